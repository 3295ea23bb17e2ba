"""Key functions: which client a request counts against.

The specs, when a request has no key, why every key is at most 64 characters and what a key
function that raises does: docs/limits.md ("Keys").  ``ip`` and ``header:`` also work on a
raw ASGI scope, for the ASGI fast path."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from hashlib import blake2b
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async

from ..clock import monotonic
from ..dotted import import_dotted
from ..exceptions import ConfigError, ResilienceError
from ..units import safe_repr
from .proxies import DEFAULT_IPV6_PREFIX, TrustedProxies, peer_key

__all__ = [
    "MAX_KEY_LENGTH",
    "KeyFunc",
    "as_awaitable",
    "bounded_key",
    "callable_key",
    "check_key_spec",
    "compile_key",
]

Request = Any  # django.http.HttpRequest; kept loose so tests can pass stand-ins
Scope = Mapping[str, Any]

logger = logging.getLogger("resilience_django.limiting")
# A key function that raises on every request logs at most this often (seconds).
_LOG_EVERY = 60.0
# The longest key stored, of any kind; past it a value is hashed (see bounded_key).
MAX_KEY_LENGTH = 64
_BUILTIN = frozenset({"ip", "user", "user_or_ip"})
# An HTTP field name (RFC 9110 "token"): any other name can never arrive, and a
# rule keyed on it would save, show "in force" and never limit anything.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def bounded_key(value: str) -> str:
    """``value``, or its digest past ``MAX_KEY_LENGTH``: what every key function returns."""
    # "#" marks a digest: a short value starting with it is hashed too, so none collide.
    if len(value) <= MAX_KEY_LENGTH and not value.startswith("#"):
        return value
    return "#" + blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(slots=True, eq=False, repr=False)
class KeyFunc:
    """A compiled key spec: ``get(request)`` for sync code, ``aget(request)`` for async code;
    ``loop_safe``: ``get`` never blocks, so async callers may call it and skip a coroutine.
    ``from_scope(scope)`` is ``None`` when the key needs a Django request (``needs_request``),
    as keys that may read ``request.user`` all do."""

    spec: str
    get: Callable[[Request], str | None]
    aget: Callable[[Request], Awaitable[str | None]]
    _: KW_ONLY
    loop_safe: bool
    from_scope: Callable[[Scope], str | None] | None = None

    @property
    def needs_request(self) -> bool:
        return self.from_scope is None


def _scope_header(scope: Scope, name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]
    return ",".join(values) if values else None


def _ip_key(trusted: TrustedProxies | None) -> KeyFunc:
    prefix = DEFAULT_IPV6_PREFIX if trusted is None else trusted.ipv6_prefix
    if trusted is None or not trusted.reads_forwarded_for:
        # The hot path: a dotted IPv4 peer is the key as the server wrote it, with no parse
        # and no call; anything else is normalized (IPv6 to its network) and bounded.

        def peer(remote: str | None) -> str | None:
            if not remote:
                return None
            if len(remote) <= 15 and ":" not in remote:
                return remote
            return bounded_key(peer_key(remote, prefix))

        def get(request: Request) -> str | None:
            remote: str | None = request.META.get("REMOTE_ADDR")
            if remote and len(remote) <= 15 and ":" not in remote:
                return remote
            return peer(remote)

        def from_scope(scope: Scope) -> str | None:
            client = scope.get("client")
            return peer(client[0] if client else None)

    else:
        client_key = trusted.client_key

        def get(request: Request) -> str | None:
            meta = request.META
            key = client_key(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))
            return None if key is None else bounded_key(key)

        def from_scope(scope: Scope) -> str | None:
            client = scope.get("client")
            forwarded = _scope_header(scope, b"x-forwarded-for")
            key = client_key(client[0] if client else None, forwarded)
            return None if key is None else bounded_key(key)

    return KeyFunc("ip", get, as_awaitable(get), loop_safe=True, from_scope=from_scope)


def as_awaitable(
    get: Callable[[Request], str | None],
) -> Callable[[Request], Awaitable[str | None]]:
    """The async twin of a key function that never blocks."""

    async def aget(request: Request) -> str | None:
        return get(request)

    return aget


def _user_keys(ip: KeyFunc, *, with_ip: bool) -> KeyFunc:
    ip_get = ip.get

    def key(user: Any, request: Request) -> str | None:
        pk = None
        if user is not None and getattr(user, "is_authenticated", False):
            pk = bounded_key(str(user.pk))
        if not with_ip:
            return pk
        if pk is not None:
            return bounded_key("user:" + pk)
        address = ip_get(request)
        return None if address is None else bounded_key("ip:" + address)

    def get(request: Request) -> str | None:
        return key(getattr(request, "user", None), request)

    async def aget(request: Request) -> str | None:
        # request.user is a lazy object whose first use queries the database,
        # which Django refuses on the event loop; auser() is its async twin.
        auser = getattr(request, "auser", None)
        return key(await auser() if auser is not None else None, request)

    spec = "user_or_ip" if with_ip else "user"
    return KeyFunc(spec, get, aget, loop_safe=False)


def _header_key(spec: str, name: str) -> KeyFunc:
    upper = name.upper().replace("-", "_")
    meta_key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
    # As Django names it in META: "X_Api_Key" is the X-Api-Key header the view sees.
    raw_name = name.lower().replace("_", "-").encode("latin-1")

    def get(request: Request) -> str | None:
        value = request.META.get(meta_key)
        return bounded_key(value) if value else None

    def from_scope(scope: Scope) -> str | None:
        value = _scope_header(scope, raw_name)
        return bounded_key(value) if value else None

    return KeyFunc(spec, get, as_awaitable(get), loop_safe=True, from_scope=from_scope)


def _param_key(spec: str, name: str) -> KeyFunc:
    def get(request: Request) -> str | None:
        value = request.GET.get(name)
        return bounded_key(value) if value else None

    return KeyFunc(spec, get, as_awaitable(get), loop_safe=True)


def callable_key(spec: str, func: Callable[[Request], Any], ip: KeyFunc) -> KeyFunc:
    def clean(value: Any) -> str | None:
        if value is None or value == "":
            return None
        return bounded_key(value if isinstance(value, str) else str(value))

    # Adapted once, here: the other mode goes through asgiref.
    if iscoroutinefunction(func):
        sync_func, async_func = async_to_sync(func), func
    else:
        sync_func, async_func = func, sync_to_async(func)
    logged_at = -_LOG_EVERY

    def failed(request: Request, exc: Exception) -> str | None:
        # Bad input must not become a 500, nor a way around the limit: the rule falls
        # back to the client's address (docs/limits.md, "Keys").
        if isinstance(exc, ResilienceError):  # a deadline spent in the function, say
            raise exc
        nonlocal logged_at
        if (now := monotonic()) - logged_at >= _LOG_EVERY:
            logged_at = now
            logger.exception("key function %s raised; decided on the ip key", spec)
        address = ip.get(request)
        return None if address is None else bounded_key("ip:" + address)

    def get(request: Request) -> str | None:
        try:
            return clean(sync_func(request))
        except Exception as exc:
            return failed(request, exc)

    async def aget(request: Request) -> str | None:
        try:
            return clean(await async_func(request))
        except Exception as exc:
            return failed(request, exc)

    return KeyFunc(spec, get, aget, loop_safe=False)


_HINT = "Use ip, user, user_or_ip, header:<Name>, param:<name> or a dotted path to a callable."


def _key_error(where: str, spec: Any, problem: str, hint: str = _HINT) -> ConfigError:
    return ConfigError(
        f"{where}: key {safe_repr(spec)} {problem}", check_id="resilience.E022", hint=hint
    )


def check_key_spec(spec: Any, *, where: str) -> None:
    """Raise ``ConfigError`` (``resilience.E022``) unless ``spec`` is a usable key."""
    if not isinstance(spec, str) or not spec:
        raise _key_error(where, spec, "must be a string")
    if spec in _BUILTIN:
        return
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("header", "param"):
        if not arg.strip():
            example = "header:X-Api-Key" if kind == "header" else "param:token"
            raise _key_error(where, spec, f"needs a name after '{kind}:'", f"Example: '{example}'.")
        if kind == "header" and not HEADER_NAME.match(arg.strip()):
            problem = "is not an HTTP header name (letters, digits and !#$%&'*+.^_`|~- only)"
            raise _key_error(where, spec, problem, "Example: 'header:X-Api-Key'.")
        return
    if "." not in spec or sep:
        raise _key_error(where, spec, "is not a known key function")
    # Only settings (code) and keys RESILIENCE["ADMIN_CHOICES"] allows get here;
    # admin rows are checked against that list before anything is imported.
    try:
        func = import_dotted(spec)
    except ImportError as exc:  # any failure of the module's code, see dotted.py
        problem = f"is not a key function and cannot be imported ({exc})"
        raise _key_error(where, spec, problem) from exc
    if not callable(func):
        hint = "The dotted path must name a function taking the request."
        raise _key_error(where, spec, "is not callable", hint)


def compile_key(spec: str, trusted: TrustedProxies | None = None) -> KeyFunc:
    """Turn a key spec into a ``KeyFunc``; call once at start-up, never per request."""
    check_key_spec(spec, where="key")
    ip = _ip_key(trusted)
    if spec == "ip":
        return ip
    if spec in ("user", "user_or_ip"):
        return _user_keys(ip, with_ip=spec == "user_or_ip")
    kind, _, arg = spec.partition(":")
    if kind == "header":
        return _header_key(spec, arg.strip())
    if kind == "param":
        return _param_key(spec, arg.strip())
    return callable_key(spec, import_dotted(spec), ip)  # importable and callable: checked
