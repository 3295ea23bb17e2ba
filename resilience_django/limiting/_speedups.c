/*
 * The hot half of the three limiting kernels, in C.
 *
 * algorithms.py is the reference: its module docstring gives the semantics and
 * its pure-Python classes are what runs when this module is not built.  Here
 * are only the calls every request makes (new_state, acquire, outcome, with
 * the rejection's retry and reset figures) and the two answer objects they
 * build (RuleOutcome, Decision), because a Python __init__ per answer costs
 * more than the arithmetic.  The cold steps a multi-rule decision or a refund
 * uses (advance, fits, consume, refund, info) stay in Python and are inherited
 * by the accelerated classes, over the same state lists.
 *
 * Every figure must equal the Python kernel's to the last bit, which
 * tests/limiting/test_speedups.py checks on random sequences: the same
 * operations in the same order on doubles, no contraction to fused
 * multiply-add (setup.py passes -ffp-contract=off), and integer state kept as
 * Python ints.  Two deliberate differences: a negative cost is a ValueError
 * (the engine never makes one; Python would treat it as a refund), and a time
 * the sliding window cannot place in a bucket (NaN, infinite, beyond 2**63
 * buckets) is an OverflowError.  With an integer clock (tests only; real
 * clocks are floats) a few figures come back as equal floats where Python
 * gives ints.
 *
 * Thread safety: none of these functions runs Python code or releases the GIL
 * between reading and writing a state list, so on a GIL build each call is
 * atomic; the store still takes its shard locks, as it does for Python kernels.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <structmember.h>

#define EPSILON 1e-6

static PyObject *str_cost;            /* interned "cost" */
static PyObject *str_move_to_end;     /* interned "move_to_end" */
static PyObject *str_new_state;       /* interned "new_state" */
static PyObject *str_outcome;         /* interned "outcome" */
static PyObject *str_acquire;         /* interned "acquire" */
static PyObject *str_popitem;         /* interned "popitem" */
static PyObject *str_policy;          /* interned "policy" */
static PyObject *str_key;             /* interned "key" */
static PyTypeObject *outcome_class;   /* decision.RuleOutcome, set by register() */
static PyTypeObject *decision_class;  /* decision.Decision, set by register() */
/*
 * The compiled entry (policy, kernel, prefix) of the last one-check decision and
 * the dict it came from: nearly every request of a service meets the same rule,
 * and this spares the id() integer and the dict lookup.  The entry is held, so
 * its policy lives and its address cannot be reused by another policy; a stale
 * hit (that dict emptied, or freed and another at its address) still names the
 * same policy, whose kernel is the same wherever it was compiled.
 */
static PyObject *last_entry;
static PyObject *last_compiled; /* compared by address only, never dereferenced */

/* -- answer objects ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *check;
    PyObject *allowed;
    PyObject *remaining;
    PyObject *reset_after;
    PyObject *retry_after;
} OutcomeObject;

static int
outcome_traverse(OutcomeObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->check);
    Py_VISIT(self->allowed);
    Py_VISIT(self->remaining);
    Py_VISIT(self->reset_after);
    Py_VISIT(self->retry_after);
    return 0;
}

static int
outcome_clear(OutcomeObject *self)
{
    Py_CLEAR(self->check);
    Py_CLEAR(self->allowed);
    Py_CLEAR(self->remaining);
    Py_CLEAR(self->reset_after);
    Py_CLEAR(self->retry_after);
    return 0;
}

static void
outcome_dealloc(OutcomeObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    outcome_clear(self);
    /* A static base: subtype_dealloc drops a subclass's type reference. */
    type->tp_free((PyObject *)self);
}

static PyObject *
outcome_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"check", "allowed", "remaining", "reset_after", "retry_after", NULL};
    PyObject *check, *allowed, *remaining, *reset_after, *retry_after;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOO:RuleOutcome", names, &check, &allowed,
                                     &remaining, &reset_after, &retry_after)) {
        return NULL;
    }
    OutcomeObject *self = (OutcomeObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->check = Py_NewRef(check);
    self->allowed = Py_NewRef(allowed);
    self->remaining = Py_NewRef(remaining);
    self->reset_after = Py_NewRef(reset_after);
    self->retry_after = Py_NewRef(retry_after);
    return (PyObject *)self;
}

static PyMemberDef outcome_members[] = {
    {"check", T_OBJECT_EX, offsetof(OutcomeObject, check), READONLY, NULL},
    {"allowed", T_OBJECT_EX, offsetof(OutcomeObject, allowed), READONLY, NULL},
    {"remaining", T_OBJECT_EX, offsetof(OutcomeObject, remaining), READONLY, NULL},
    {"reset_after", T_OBJECT_EX, offsetof(OutcomeObject, reset_after), READONLY, NULL},
    {"retry_after", T_OBJECT_EX, offsetof(OutcomeObject, retry_after), READONLY, NULL},
    {NULL},
};

static PyTypeObject OutcomeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resilience_django.limiting._speedups.Outcome",
    .tp_doc = "The fields of RuleOutcome; decision.RuleOutcome adds the rest.",
    .tp_basicsize = sizeof(OutcomeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = outcome_new,
    .tp_dealloc = (destructor)outcome_dealloc,
    .tp_traverse = (traverseproc)outcome_traverse,
    .tp_clear = (inquiry)outcome_clear,
    .tp_members = outcome_members,
};

typedef struct {
    PyObject_HEAD
    PyObject *allowed;
    PyObject *outcomes;
    PyObject *backend;
} DecisionObject;

static int
decision_traverse(DecisionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->allowed);
    Py_VISIT(self->outcomes);
    Py_VISIT(self->backend);
    return 0;
}

static int
decision_clear(DecisionObject *self)
{
    Py_CLEAR(self->allowed);
    Py_CLEAR(self->outcomes);
    Py_CLEAR(self->backend);
    return 0;
}

static void
decision_dealloc(DecisionObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    decision_clear(self);
    /* A static base: subtype_dealloc drops a subclass's type reference. */
    type->tp_free((PyObject *)self);
}

static PyObject *str_local;
static PyObject *float_zero; /* 0.0, the retry_after of every admitted request */

static inline PyObject *
new_float(double value)
{
    return value == 0.0 && !signbit(value) ? Py_NewRef(float_zero) : PyFloat_FromDouble(value);
}

static PyObject *
decision_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"allowed", "outcomes", "backend", NULL};
    PyObject *allowed, *outcomes, *backend = str_local;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:Decision", names, &allowed, &outcomes,
                                     &backend)) {
        return NULL;
    }
    DecisionObject *self = (DecisionObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->allowed = Py_NewRef(allowed);
    self->outcomes = Py_NewRef(outcomes);
    self->backend = Py_NewRef(backend);
    return (PyObject *)self;
}

static PyMemberDef decision_members[] = {
    {"allowed", T_OBJECT_EX, offsetof(DecisionObject, allowed), READONLY, NULL},
    {"outcomes", T_OBJECT_EX, offsetof(DecisionObject, outcomes), READONLY, NULL},
    {"backend", T_OBJECT_EX, offsetof(DecisionObject, backend), READONLY, NULL},
    {NULL},
};

static PyTypeObject DecisionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resilience_django.limiting._speedups.Decision",
    .tp_doc = "The fields of Decision; decision.Decision adds the rest.",
    .tp_basicsize = sizeof(DecisionObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = decision_new,
    .tp_dealloc = (destructor)decision_dealloc,
    .tp_traverse = (traverseproc)decision_traverse,
    .tp_clear = (inquiry)decision_clear,
    .tp_members = decision_members,
};

/* A RuleOutcome of the registered class, stealing the three figure references. */
static PyObject *
make_outcome(PyObject *check, int allowed, PyObject *remaining, PyObject *reset_after,
             PyObject *retry_after)
{
    if (remaining == NULL || reset_after == NULL || retry_after == NULL) {
        goto fail;
    }
    if (outcome_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.register() was not called");
        goto fail;
    }
    OutcomeObject *self = (OutcomeObject *)outcome_class->tp_alloc(outcome_class, 0);
    if (self == NULL) {
        goto fail;
    }
    self->check = Py_NewRef(check);
    self->allowed = Py_NewRef(allowed ? Py_True : Py_False);
    self->remaining = remaining;
    self->reset_after = reset_after;
    self->retry_after = retry_after;
    return (PyObject *)self;
fail:
    Py_XDECREF(remaining);
    Py_XDECREF(reset_after);
    Py_XDECREF(retry_after);
    return NULL;
}

/* -- small helpers over the state list ------------------------------------- */

/* The sliding window's bucket of ``now``: math.floor(now / width) as a C integer. */
static inline int
bucket_of(double now, double width, long long *bucket)
{
    double b = floor(now / width);
    if (!(b > -9.2e18 && b < 9.2e18)) { /* NaN and infinities too */
        PyErr_SetString(PyExc_OverflowError, "now is not a time the sliding window can place");
        return -1;
    }
    *bucket = (long long)b;
    return 0;
}

/* Python's j % n for n > 0 (never negative). */
static inline Py_ssize_t
pymod(long long j, Py_ssize_t n)
{
    long long r = j % n;
    return (Py_ssize_t)(r < 0 ? r + n : r);
}

/* A request's cost as a C integer; a negative cost, which the engine never makes, is an error
 * rather than a refund in disguise. */
static int
as_cost(PyObject *value, long long *cost)
{
    *cost = PyLong_AsLongLong(value);
    if (*cost == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (*cost < 0) {
        PyErr_SetString(PyExc_ValueError, "a cost must not be negative");
        return -1;
    }
    return 0;
}

static int
get_cost(PyObject *check, long long *cost)
{
    PyObject *value = PyObject_GetAttr(check, str_cost);
    if (value == NULL) {
        return -1;
    }
    int result = as_cost(value, cost);
    Py_DECREF(value);
    return result;
}

static int
check_state(PyObject *state, Py_ssize_t size)
{
    if (!PyList_CheckExact(state) || PyList_GET_SIZE(state) != size) {
        PyErr_Format(PyExc_TypeError, "state must be a list of %zd items", size);
        return -1;
    }
    return 0;
}

/* state[i] as a C long long; the state list holds Python ints. */
static inline int
item_ll(PyObject *state, Py_ssize_t i, long long *out)
{
    *out = PyLong_AsLongLong(PyList_GET_ITEM(state, i));
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static inline int
set_ll(PyObject *state, Py_ssize_t i, long long value)
{
    PyObject *item = PyLong_FromLongLong(value);
    if (item == NULL) {
        return -1;
    }
    PyList_SetItem(state, i, item); /* steals, drops the old item */
    return 0;
}

static inline int
item_double(PyObject *state, Py_ssize_t i, double *out)
{
    *out = PyFloat_AsDouble(PyList_GET_ITEM(state, i));
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static inline int
set_double(PyObject *state, Py_ssize_t i, double value)
{
    PyObject *item = PyFloat_FromDouble(value);
    if (item == NULL) {
        return -1;
    }
    PyList_SetItem(state, i, item);
    return 0;
}

static int
parse_state_now(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *name,
                double *now)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want, nargs);
        return -1;
    }
    *now = PyFloat_AsDouble(args[1]);
    return (*now == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* -- sliding window --------------------------------------------------------- */

/* total + cost > limit, without overflow (0 <= cost, 0 <= total, 1 <= limit). */
static inline int
sw_over(long long total, long long cost, long long limit)
{
    return cost > limit || total > limit - cost;
}

typedef struct {
    PyObject_HEAD
    long long limit;
    double period;
    PyObject *period_obj; /* as given: retry_after = period answers it, like the Python kernel */
    Py_ssize_t buckets;
    double width;
    PyObject *tag;
    PyObject *zeros; /* a tuple: Python code reads it, nothing may change it */
} SlidingWindowObject;

static PyObject *
sw_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"limit", "period", "buckets", NULL};
    long long limit;
    PyObject *period_obj;
    Py_ssize_t buckets = 10;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LO|n:SlidingWindow", names, &limit, &period_obj,
                                     &buckets)) {
        return NULL;
    }
    double period = PyFloat_AsDouble(period_obj);
    if (period == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (buckets < 1 || !(period > 0.0) || limit < 1) {
        PyErr_SetString(PyExc_ValueError, "limit, period and buckets must be positive");
        return NULL;
    }
    SlidingWindowObject *self = (SlidingWindowObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->limit = limit;
    self->period = period;
    self->period_obj = Py_NewRef(period_obj);
    self->buckets = buckets;
    self->width = period / (double)buckets;
    /* The same tag as the Python kernel: f"sw:{period!r}:{buckets}". */
    self->tag = PyUnicode_FromFormat("sw:%R:%zd", period_obj, buckets);
    self->zeros = PyTuple_New(buckets);
    if (self->tag == NULL || self->zeros == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    for (Py_ssize_t i = 0; i < buckets; i++) {
        PyTuple_SET_ITEM(self->zeros, i, Py_NewRef(zero));
    }
    Py_DECREF(zero);
    return (PyObject *)self;
}

static void
sw_dealloc(SlidingWindowObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(self->period_obj);
    Py_CLEAR(self->tag);
    Py_CLEAR(self->zeros);
    /* A static base: subtype_dealloc drops a subclass's type reference. */
    type->tp_free((PyObject *)self);
}

static PyObject *
sw_new_state(SlidingWindowObject *self, PyObject *now_obj)
{
    double now = PyFloat_AsDouble(now_obj);
    if (now == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t n = self->buckets;
    PyObject *state = PyList_New(n + 3);
    if (state == NULL) {
        return NULL;
    }
    long long bucket;
    PyObject *b = bucket_of(now, self->width, &bucket) < 0 ? NULL : PyLong_FromLongLong(bucket);
    if (b == NULL) {
        Py_DECREF(state);
        return NULL;
    }
    PyObject *zero = PyTuple_GET_ITEM(self->zeros, 0);
    PyList_SET_ITEM(state, 0, Py_NewRef(b));
    PyList_SET_ITEM(state, 1, Py_NewRef(zero));
    PyList_SET_ITEM(state, 2, b);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyList_SET_ITEM(state, i + 3, Py_NewRef(zero));
    }
    return state;
}

/* SlidingWindow.advance; *head receives the head after it. */
static int
sw_advance(SlidingWindowObject *self, PyObject *state, double now, long long *head)
{
    long long b;
    if (bucket_of(now, self->width, &b) < 0 || item_ll(state, 0, head) < 0) {
        return -1;
    }
    if (b <= *head) {
        return 0;
    }
    Py_ssize_t n = self->buckets;
    if (b - *head >= n) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (set_ll(state, i + 3, 0) < 0) {
                return -1;
            }
        }
        if (set_ll(state, 1, 0) < 0) {
            return -1;
        }
    }
    else {
        long long total, count;
        if (item_ll(state, 1, &total) < 0) {
            return -1;
        }
        for (long long j = *head + 1; j <= b; j++) {
            Py_ssize_t i = pymod(j, n) + 3;
            if (item_ll(state, i, &count) < 0 || set_ll(state, i, 0) < 0) {
                return -1;
            }
            total -= count;
        }
        if (set_ll(state, 1, total) < 0) {
            return -1;
        }
    }
    *head = b;
    return set_ll(state, 0, b);
}

static PyObject *
sw_acquire(SlidingWindowObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double now;
    long long head, total, cost, count;
    if (parse_state_now(args, nargs, 3, "acquire", &now) < 0) {
        return NULL;
    }
    PyObject *state = args[0];
    if (as_cost(args[2], &cost) < 0 || check_state(state, self->buckets + 3) < 0 ||
        sw_advance(self, state, now, &head) < 0 || item_ll(state, 1, &total) < 0) {
        return NULL;
    }
    if (sw_over(total, cost, self->limit)) {
        Py_RETURN_FALSE;
    }
    Py_ssize_t i = pymod(head, self->buckets) + 3;
    if (item_ll(state, i, &count) < 0 || set_ll(state, i, count + cost) < 0 ||
        set_ll(state, 1, total + cost) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* Move the oldest-bucket hint to the oldest non-empty bucket in the window. */
static int
sw_oldest(SlidingWindowObject *self, PyObject *state, long long head, long long *oldest)
{
    Py_ssize_t n = self->buckets;
    long long j, hint, count;
    if (item_ll(state, 2, &hint) < 0) {
        return -1;
    }
    j = hint;
    if (j <= head - n) {
        j = head - n + 1;
    }
    while (j < head) {
        if (item_ll(state, pymod(j, n) + 3, &count) < 0) {
            return -1;
        }
        if (count != 0) {
            break;
        }
        j++;
    }
    *oldest = j;
    return j == hint ? 0 : set_ll(state, 2, j); /* an int object less when unchanged */
}

static PyObject *
sw_outcome(SlidingWindowObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double now;
    long long head, total, cost, count, j;
    if (parse_state_now(args, nargs, 3, "outcome", &now) < 0) {
        return NULL;
    }
    PyObject *state = args[0], *check = args[2];
    if (get_cost(check, &cost) < 0 || check_state(state, self->buckets + 3) < 0 ||
        sw_advance(self, state, now, &head) < 0 || item_ll(state, 1, &total) < 0) {
        return NULL;
    }
    Py_ssize_t n = self->buckets;
    long long limit = self->limit;
    double w = self->width;
    if (sw_over(total, cost, limit)) {
        /* SlidingWindow.info(state, now, cost, allowed=False) */
        long long remaining = total < limit ? limit - total : 0;
        /* A cost above the limit never fits: retry after a period (the object, as Python). */
        PyObject *never = cost > limit ? Py_NewRef(self->period_obj) : NULL;
        if (total == 0) {
            return make_outcome(check, 0, PyLong_FromLongLong(remaining), new_float(0.0),
                                never != NULL ? never : new_float(0.0));
        }
        if (sw_oldest(self, state, head, &j) < 0) {
            Py_XDECREF(never);
            return NULL;
        }
        double reset_after = (double)(j + n) * w - now;
        if (never != NULL) {
            return make_outcome(check, 0, PyLong_FromLongLong(remaining),
                                new_float(reset_after > 0.0 ? reset_after : 0.0), never);
        }
        double retry_after;
        {
            long long need = (total - limit) + cost, freed = 0;
            for (;;) {
                if (item_ll(state, pymod(j, n) + 3, &count) < 0) {
                    return NULL;
                }
                freed += count;
                if (freed >= need || j >= head) { /* j >= head: a corrupt state, not a hang */
                    break;
                }
                j++;
            }
            retry_after = (double)(j + n) * w - now;
        }
        return make_outcome(check, 0, PyLong_FromLongLong(remaining),
                            PyFloat_FromDouble(reset_after > 0.0 ? reset_after : 0.0),
                            PyFloat_FromDouble(retry_after > 0.0 ? retry_after : 0.0));
    }
    Py_ssize_t i = pymod(head, n) + 3;
    total += cost;
    if (item_ll(state, i, &count) < 0 || set_ll(state, i, count + cost) < 0 ||
        set_ll(state, 1, total) < 0 || sw_oldest(self, state, head, &j) < 0) {
        return NULL;
    }
    return make_outcome(check, 1, PyLong_FromLongLong(limit - total),
                        PyFloat_FromDouble((double)(j + n) * w - now), new_float(0.0));
}

static PyMethodDef sw_methods[] = {
    {"new_state", (PyCFunction)sw_new_state, METH_O, NULL},
    {"acquire", (PyCFunction)(void (*)(void))sw_acquire, METH_FASTCALL, NULL},
    {"outcome", (PyCFunction)(void (*)(void))sw_outcome, METH_FASTCALL, NULL},
    {NULL},
};

static PyMemberDef sw_members[] = {
    {"limit", T_LONGLONG, offsetof(SlidingWindowObject, limit), READONLY, NULL},
    {"period", T_OBJECT_EX, offsetof(SlidingWindowObject, period_obj), READONLY, NULL},
    {"buckets", T_PYSSIZET, offsetof(SlidingWindowObject, buckets), READONLY, NULL},
    {"width", T_DOUBLE, offsetof(SlidingWindowObject, width), READONLY, NULL},
    {"tag", T_OBJECT_EX, offsetof(SlidingWindowObject, tag), READONLY, NULL},
    {"_zeros", T_OBJECT_EX, offsetof(SlidingWindowObject, zeros), READONLY, NULL},
    {NULL},
};

static PyTypeObject SlidingWindowType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resilience_django.limiting._speedups.SlidingWindow",
    .tp_basicsize = sizeof(SlidingWindowObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = sw_new,
    .tp_dealloc = (destructor)sw_dealloc,
    .tp_methods = sw_methods,
    .tp_members = sw_members,
};

/* -- token bucket and GCRA: the same constructor arguments --------------------- */

/* The fields both bucket kernels start with, so one constructor and one dealloc serve both. */
#define BUCKET_HEAD                                                                         \
    PyObject_HEAD                                                                           \
    long long limit;                                                                        \
    double period;                                                                          \
    PyObject *period_obj; /* as given: retry_after = period answers it, like Python */      \
    PyObject *tag;                                                                          \
    long long capacity;

typedef struct {
    BUCKET_HEAD
} BucketHead;

/* Parse (limit, period, capacity) and fill the head of a new kernel of ``type``. */
static BucketHead *
bucket_new(PyTypeObject *type, PyObject *args, PyObject *kwds, const char *format,
           const char *tag)
{
    static char *names[] = {"limit", "period", "capacity", NULL};
    long long limit, capacity;
    PyObject *period_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, format, names, &limit, &period_obj,
                                     &capacity)) {
        return NULL;
    }
    double period = PyFloat_AsDouble(period_obj);
    if (period == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (limit < 1 || !(period > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "limit and period must be positive");
        return NULL;
    }
    BucketHead *self = (BucketHead *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->limit = limit;
    self->period = period;
    self->period_obj = Py_NewRef(period_obj);
    self->capacity = capacity;
    self->tag = PyUnicode_InternFromString(tag);
    if (self->tag == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static void
bucket_dealloc(BucketHead *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_CLEAR(self->period_obj);
    Py_CLEAR(self->tag);
    /* A static base: subtype_dealloc drops a subclass's type reference. */
    type->tp_free((PyObject *)self);
}

/* -- token bucket ------------------------------------------------------------ */

typedef struct {
    BUCKET_HEAD
    double rate;
} TokenBucketObject;

static PyObject *
tb_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    TokenBucketObject *self =
        (TokenBucketObject *)bucket_new(type, args, kwds, "LOL:TokenBucket", "tb");
    if (self != NULL) {
        self->rate = (double)self->limit / self->period;
    }
    return (PyObject *)self;
}

static PyObject *
tb_new_state(TokenBucketObject *self, PyObject *now)
{
    PyObject *tokens = PyFloat_FromDouble((double)self->capacity);
    if (tokens == NULL) {
        return NULL;
    }
    return Py_BuildValue("[NO]", tokens, now);
}

/* TokenBucket.advance; *tokens receives the tokens after it. */
static int
tb_advance(TokenBucketObject *self, PyObject *state, double now, PyObject *now_obj,
           double *tokens)
{
    double last, capacity = (double)self->capacity;
    if (item_double(state, 0, tokens) < 0 || item_double(state, 1, &last) < 0) {
        return -1;
    }
    double elapsed = now - last;
    if (elapsed > 0) {
        double t = *tokens + elapsed * self->rate;
        *tokens = t < capacity ? t : capacity;
        if (set_double(state, 0, *tokens) < 0) {
            return -1;
        }
        PyList_SetItem(state, 1, Py_NewRef(now_obj)); /* ``now`` as given, as Python stores it */
    }
    else if (*tokens > capacity) {
        *tokens = capacity;
        return set_double(state, 0, capacity);
    }
    return 0;
}

static PyObject *
tb_acquire(TokenBucketObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double now, tokens;
    if (parse_state_now(args, nargs, 3, "acquire", &now) < 0) {
        return NULL;
    }
    PyObject *state = args[0];
    long long cost;
    if (as_cost(args[2], &cost) < 0 || check_state(state, 2) < 0 ||
        tb_advance(self, state, now, args[1], &tokens) < 0) {
        return NULL;
    }
    if (tokens + EPSILON < (double)cost) {
        Py_RETURN_FALSE;
    }
    if (set_double(state, 0, tokens - (double)cost) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
tb_outcome(TokenBucketObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double now, tokens;
    long long cost;
    if (parse_state_now(args, nargs, 3, "outcome", &now) < 0) {
        return NULL;
    }
    PyObject *state = args[0], *check = args[2];
    if (get_cost(check, &cost) < 0 || check_state(state, 2) < 0 ||
        tb_advance(self, state, now, args[1], &tokens) < 0) {
        return NULL;
    }
    double rate = self->rate, capacity = (double)self->capacity;
    double left = tokens - (double)cost;
    if (left + EPSILON < 0) {
        /* TokenBucket.info(state, now, cost, allowed=False) */
        double remaining = floor(tokens + EPSILON);
        double reset_after = (capacity - tokens) / rate;
        double retry_after = ((double)cost - tokens) / rate;
        return make_outcome(
            check, 0, PyLong_FromDouble(remaining > 0 ? remaining : 0.0),
            new_float(reset_after > 0.0 ? reset_after : 0.0),
            cost > self->capacity ? Py_NewRef(self->period_obj) /* never fits */
                                  : new_float(retry_after > 0.0 ? retry_after : 0.0));
    }
    if (set_double(state, 0, left) < 0) {
        return NULL;
    }
    double remaining = floor(left + EPSILON);
    return make_outcome(check, 1, PyLong_FromDouble(remaining > 0 ? remaining : 0.0),
                        PyFloat_FromDouble((capacity - left) / rate), new_float(0.0));
}

static PyMethodDef tb_methods[] = {
    {"new_state", (PyCFunction)tb_new_state, METH_O, NULL},
    {"acquire", (PyCFunction)(void (*)(void))tb_acquire, METH_FASTCALL, NULL},
    {"outcome", (PyCFunction)(void (*)(void))tb_outcome, METH_FASTCALL, NULL},
    {NULL},
};

static PyMemberDef tb_members[] = {
    {"limit", T_LONGLONG, offsetof(TokenBucketObject, limit), READONLY, NULL},
    {"period", T_OBJECT_EX, offsetof(TokenBucketObject, period_obj), READONLY, NULL},
    {"capacity", T_LONGLONG, offsetof(TokenBucketObject, capacity), READONLY, NULL},
    {"rate", T_DOUBLE, offsetof(TokenBucketObject, rate), READONLY, NULL},
    {"tag", T_OBJECT_EX, offsetof(TokenBucketObject, tag), READONLY, NULL},
    {NULL},
};

static PyTypeObject TokenBucketType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resilience_django.limiting._speedups.TokenBucket",
    .tp_basicsize = sizeof(TokenBucketObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = tb_new,
    .tp_dealloc = (destructor)bucket_dealloc,
    .tp_methods = tb_methods,
    .tp_members = tb_members,
};

/* -- GCRA -------------------------------------------------------------------- */

typedef struct {
    BUCKET_HEAD
    double interval;
    double tau;
    double slack;
} GcraObject;

static PyObject *
gcra_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    GcraObject *self = (GcraObject *)bucket_new(type, args, kwds, "LOL:Gcra", "gcra");
    if (self != NULL) {
        self->interval = self->period / (double)self->limit;
        self->tau = (double)self->capacity * self->interval;
        self->slack = EPSILON * self->interval;
    }
    return (PyObject *)self;
}

static PyObject *
gcra_new_state(GcraObject *self, PyObject *now)
{
    return Py_BuildValue("[O]", now);
}

static PyObject *
gcra_acquire(GcraObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double now, tat;
    if (parse_state_now(args, nargs, 3, "acquire", &now) < 0) {
        return NULL;
    }
    PyObject *state = args[0];
    long long cost;
    if (as_cost(args[2], &cost) < 0 || check_state(state, 1) < 0 ||
        item_double(state, 0, &tat) < 0) {
        return NULL;
    }
    if (tat < now) {
        tat = now;
    }
    tat += (double)cost * self->interval;
    if (tat - now > self->tau + self->slack) {
        Py_RETURN_FALSE;
    }
    if (set_double(state, 0, tat) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
gcra_outcome(GcraObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    double now, stored;
    long long cost;
    if (parse_state_now(args, nargs, 3, "outcome", &now) < 0) {
        return NULL;
    }
    PyObject *state = args[0], *check = args[2];
    if (get_cost(check, &cost) < 0 || check_state(state, 1) < 0 ||
        item_double(state, 0, &stored) < 0) {
        return NULL;
    }
    double t = self->interval, tau = self->tau;
    double tat = stored < now ? now : stored;
    double next = tat + (double)cost * t;
    if (next - now > tau + self->slack) {
        /* Gcra.info(state, now, cost, allowed=False): the state is unchanged. */
        tat = stored > now ? stored : now;
        double remaining = floor((tau - (tat - now)) / t + EPSILON);
        double retry_after = tat + (double)cost * t - now - tau;
        return make_outcome(
            check, 0, PyLong_FromDouble(remaining > 0 ? remaining : 0.0), new_float(tat - now),
            cost > self->capacity ? Py_NewRef(self->period_obj) /* never fits */
                                  : new_float(retry_after > 0.0 ? retry_after : 0.0));
    }
    if (set_double(state, 0, next) < 0) {
        return NULL;
    }
    double remaining = floor((tau - (next - now)) / t + EPSILON);
    return make_outcome(check, 1, PyLong_FromDouble(remaining > 0 ? remaining : 0.0),
                        PyFloat_FromDouble(next - now), new_float(0.0));
}

static PyMethodDef gcra_methods[] = {
    {"new_state", (PyCFunction)gcra_new_state, METH_O, NULL},
    {"acquire", (PyCFunction)(void (*)(void))gcra_acquire, METH_FASTCALL, NULL},
    {"outcome", (PyCFunction)(void (*)(void))gcra_outcome, METH_FASTCALL, NULL},
    {NULL},
};

static PyMemberDef gcra_members[] = {
    {"limit", T_LONGLONG, offsetof(GcraObject, limit), READONLY, NULL},
    {"period", T_OBJECT_EX, offsetof(GcraObject, period_obj), READONLY, NULL},
    {"capacity", T_LONGLONG, offsetof(GcraObject, capacity), READONLY, NULL},
    {"interval", T_DOUBLE, offsetof(GcraObject, interval), READONLY, NULL},
    {"tau", T_DOUBLE, offsetof(GcraObject, tau), READONLY, NULL},
    {"slack", T_DOUBLE, offsetof(GcraObject, slack), READONLY, NULL},
    {"tag", T_OBJECT_EX, offsetof(GcraObject, tag), READONLY, NULL},
    {NULL},
};

static PyTypeObject GcraType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resilience_django.limiting._speedups.Gcra",
    .tp_basicsize = sizeof(GcraObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = gcra_new,
    .tp_dealloc = (destructor)bucket_dealloc,
    .tp_methods = gcra_methods,
    .tp_members = gcra_members,
};

/* -- the lock hand-off's flags ------------------------------------------------ */

/*
 * LocalLimiter's hand-off between its event loop and other threads (local.py,
 * "the lock hand-off"), as C fields the loop's C step reads and writes without
 * attribute lookups.  Python code uses the same names as on _PyHandOff.
 */
typedef struct {
    PyObject_HEAD
    unsigned long loop_thread; /* the event loop thread's ident; 0 until one decides */
    char locking;
    char drained;
    char busy;
} HandOffObject;

static PyObject *
handoff_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "HandOff() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0); /* zeroed: no loop thread, not locking, not busy */
}

static PyMemberDef handoff_members[] = {
    {"loop_thread", T_ULONG, offsetof(HandOffObject, loop_thread), 0, NULL},
    {"locking", T_BOOL, offsetof(HandOffObject, locking), 0, NULL},
    {"drained", T_BOOL, offsetof(HandOffObject, drained), 0, NULL},
    {"busy", T_BOOL, offsetof(HandOffObject, busy), 0, NULL},
    {NULL},
};

static PyTypeObject HandOffType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resilience_django.limiting._speedups.HandOff",
    .tp_doc = "The local store's lock hand-off flags: loop_thread, locking, drained, busy.",
    .tp_basicsize = sizeof(HandOffObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = handoff_new,
    .tp_members = handoff_members,
};

/* -- the shard lock ------------------------------------------------------------ */

/*
 * A plain mutex, like threading.Lock, that decide_single can take without a
 * method call: a third of a locked one-check decision was the two calls to
 * threading.Lock's acquire and release.  Python code uses it as a Lock.
 */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    int held;
} ShardLockObject;

static PyObject *
shardlock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "ShardLock() takes no arguments");
        return NULL;
    }
    ShardLockObject *self = (ShardLockObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a lock");
        return NULL;
    }
    return (PyObject *)self;
}

static void
shardlock_dealloc(ShardLockObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (self->lock != NULL) {
        if (self->held) {
            PyThread_release_lock(self->lock);
        }
        PyThread_free_lock(self->lock);
    }
    type->tp_free((PyObject *)self);
}

/* Take the lock, waiting without the GIL when another thread holds it. */
static void
shardlock_take(ShardLockObject *self)
{
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    self->held = 1;
}

static int
shardlock_give(ShardLockObject *self)
{
    if (!self->held) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return -1;
    }
    self->held = 0;
    PyThread_release_lock(self->lock);
    return 0;
}

static PyObject *
shardlock_acquire(ShardLockObject *self, PyObject *unused)
{
    shardlock_take(self);
    Py_RETURN_TRUE;
}

static PyObject *
shardlock_release(ShardLockObject *self, PyObject *unused)
{
    if (shardlock_give(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
shardlock_exit(ShardLockObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (shardlock_give(self) < 0) {
        return NULL;
    }
    Py_RETURN_FALSE;
}

static PyObject *
shardlock_locked(ShardLockObject *self, PyObject *unused)
{
    return PyBool_FromLong(self->held);
}

static PyMethodDef shardlock_methods[] = {
    {"acquire", (PyCFunction)shardlock_acquire, METH_NOARGS, "Take the lock, waiting if need be."},
    {"release", (PyCFunction)shardlock_release, METH_NOARGS, "Give the lock back."},
    {"locked", (PyCFunction)shardlock_locked, METH_NOARGS, "Whether the lock is held."},
    {"__enter__", (PyCFunction)shardlock_acquire, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))shardlock_exit, METH_FASTCALL, NULL},
    {NULL},
};

static PyTypeObject ShardLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resilience_django.limiting._speedups.ShardLock",
    .tp_doc = "A mutex for one shard of the local store (threading.Lock's blocking subset).",
    .tp_basicsize = sizeof(ShardLockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = shardlock_new,
    .tp_dealloc = (destructor)shardlock_dealloc,
    .tp_methods = shardlock_methods,
};

/* -- the store's single-check step ------------------------------------------ */

/*
 * LocalLimiter keeps each shard's states in an OrderedDict used as an LRU.
 * Reading goes through the dict (an OrderedDict is one); every write goes
 * through the OrderedDict's own methods, which keep its order consistent.
 */

/* The key's state (a new reference), created if new and marked most recently used. */
static PyObject *
touch(PyObject *states, Py_ssize_t capacity, PyObject *key, PyObject *kernel, PyObject *now)
{
    if (!PyDict_Check(states)) {
        PyErr_SetString(PyExc_TypeError, "states must be an OrderedDict");
        return NULL;
    }
    PyObject *state = PyDict_GetItemWithError(states, key); /* borrowed */
    if (state != NULL) {
        Py_INCREF(state);
        PyObject *done = PyObject_CallMethodOneArg(states, str_move_to_end, key);
        if (done == NULL) {
            Py_DECREF(state);
            return NULL;
        }
        Py_DECREF(done);
        return state;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    state = PyObject_CallMethodOneArg(kernel, str_new_state, now);
    if (state == NULL || PyObject_SetItem(states, key, state) < 0) {
        Py_XDECREF(state);
        return NULL;
    }
    Py_ssize_t size = PyObject_Length(states);
    if (size < 0) {
        Py_DECREF(state);
        return NULL;
    }
    if (size > capacity) {
        /* popitem(last=False): the least recently used key goes. */
        PyObject *evicted = PyObject_CallMethodOneArg(states, str_popitem, Py_False);
        if (evicted == NULL) {
            Py_DECREF(state);
            return NULL;
        }
        Py_DECREF(evicted);
    }
    return state;
}

static PyObject *
new_decision(PyObject *allowed, PyObject *outcomes, PyObject *backend)
{
    if (decision_class == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.register() was not called");
        return NULL;
    }
    DecisionObject *self = (DecisionObject *)decision_class->tp_alloc(decision_class, 0);
    if (self == NULL) {
        return NULL;
    }
    self->allowed = Py_NewRef(allowed);
    self->outcomes = Py_NewRef(outcomes);
    self->backend = Py_NewRef(backend);
    return (PyObject *)self;
}

/* kernel.outcome(state, now, check), straight to C for our own kernels. */
static PyObject *
kernel_outcome(PyObject *kernel, PyObject *state, PyObject *now, PyObject *check)
{
    PyObject *args[3] = {state, now, check};
    if (PyObject_TypeCheck(kernel, &SlidingWindowType)) {
        return sw_outcome((SlidingWindowObject *)kernel, args, 3);
    }
    if (PyObject_TypeCheck(kernel, &GcraType)) {
        return gcra_outcome((GcraObject *)kernel, args, 3);
    }
    if (PyObject_TypeCheck(kernel, &TokenBucketType)) {
        return tb_outcome((TokenBucketObject *)kernel, args, 3);
    }
    PyObject *method_args[4] = {kernel, state, now, check};
    return PyObject_VectorcallMethod(str_outcome, method_args,
                                     4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
decide_one(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "decide_one(states, capacity, key, kernel, now, check) takes 6 arguments");
        return NULL;
    }
    PyObject *states = args[0], *key = args[2], *kernel = args[3], *now = args[4],
             *check = args[5];
    Py_ssize_t capacity = PyLong_AsSsize_t(args[1]);
    if (capacity == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *state = touch(states, capacity, key, kernel, now);
    if (state == NULL) {
        return NULL;
    }
    PyObject *outcome = kernel_outcome(kernel, state, now, check);
    Py_DECREF(state);
    if (outcome == NULL) {
        return NULL;
    }
    if (!PyObject_TypeCheck(outcome, &OutcomeType)) {
        Py_DECREF(outcome);
        PyErr_SetString(PyExc_TypeError, "kernel.outcome() must return a RuleOutcome");
        return NULL;
    }
    PyObject *outcomes = PyTuple_Pack(1, outcome);
    Py_DECREF(outcome);
    if (outcomes == NULL) {
        return NULL;
    }
    PyObject *decision =
        new_decision(((OutcomeObject *)outcome)->allowed, outcomes, str_local);
    Py_DECREF(outcomes);
    return decision;
}

/*
 * LocalLimiter.decide for one check, from the check to the answer: the
 * compiled policy, the store key, the shard, its lock, the LRU entry, the
 * kernel.  ``shards`` holds one (states, capacity, lock) tuple per shard and
 * ``compiled`` maps id(policy) to (policy, kernel, prefix), as LocalLimiter
 * keeps them.  Returns None when the policy is not compiled yet: the caller
 * compiles it and asks again.
 */
static PyObject *decide_single_impl(PyObject *module, PyObject *const *args, int locked);

static PyObject *
decide_single(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "decide_single(shards, mask, compiled, check, now, locked) takes 6 "
                        "arguments");
        return NULL;
    }
    int locked = PyObject_IsTrue(args[5]);
    if (locked < 0) {
        return NULL;
    }
    return decide_single_impl(module, args, locked);
}

/*
 * LocalLimiter.decide_on_loop for one check: decide_single without a lock
 * while the limiter's event loop thread is the only one deciding, with the
 * same hand-off as the Python path (local.py, "the lock hand-off"): busy is
 * set before locking is read, so a thread that turns locking on waits for
 * this decision to end.  The last argument is the limiter's HandOff.  Returns
 * None, for the Python path to handle, when this thread is not the limiter's
 * loop thread (or none is recorded yet) or the policy is not compiled yet.
 */
static PyObject *
decide_single_on_loop(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !Py_IS_TYPE(args[5], &HandOffType)) {
        PyErr_SetString(PyExc_TypeError,
                        "decide_single_on_loop(shards, mask, compiled, check, now, gate) takes 6 "
                        "arguments, the last a HandOff");
        return NULL;
    }
    HandOffObject *gate = (HandOffObject *)args[5];
    if (gate->loop_thread != PyThread_get_thread_ident()) {
        Py_RETURN_NONE; /* another thread, or no loop thread yet: the Python path decides */
    }
    gate->busy = 1; /* before reading locking: see the hand-off in local.py */
    PyObject *decision = decide_single_impl(module, args, gate->locking);
    gate->busy = 0;
    return decision;
}

static PyObject *
decide_single_impl(PyObject *module, PyObject *const *args, int locked)
{
    PyObject *shards = args[0], *compiled = args[2], *check = args[3], *now = args[4];
    if (!PyTuple_CheckExact(shards) || !PyDict_CheckExact(compiled)) {
        PyErr_SetString(PyExc_TypeError, "decide_single(): shards must be a tuple, compiled a dict");
        return NULL;
    }
    size_t mask = PyLong_AsSize_t(args[1]);
    if (mask == (size_t)-1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *policy = PyObject_GetAttr(check, str_policy);
    if (policy == NULL) {
        return NULL;
    }
    PyObject *entry = last_entry; /* borrowed from the cache, or from the dict below */
    if (entry == NULL || last_compiled != compiled || PyTuple_GET_ITEM(entry, 0) != policy) {
        PyObject *policy_id = PyLong_FromVoidPtr(policy);
        if (policy_id == NULL) {
            Py_DECREF(policy);
            return NULL;
        }
        entry = PyDict_GetItemWithError(compiled, policy_id);
        Py_DECREF(policy_id);
        int known = entry != NULL && PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) == 3 &&
                    PyTuple_GET_ITEM(entry, 0) == policy;
        if (!known) {
            Py_DECREF(policy);
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        Py_XSETREF(last_entry, Py_NewRef(entry));
        last_compiled = compiled;
    }
    Py_DECREF(policy);
    Py_INCREF(entry); /* the dict may change under a callback; keep kernel and prefix alive */
    PyObject *client = PyObject_GetAttr(check, str_key);
    PyObject *key = client == NULL ? NULL : PyTuple_Pack(2, PyTuple_GET_ITEM(entry, 2), client);
    Py_XDECREF(client);
    Py_hash_t hash = key == NULL ? -1 : PyObject_Hash(key);
    if (hash == -1) {
        Py_XDECREF(key);
        Py_DECREF(entry);
        return NULL;
    }
    /* Python's hash(key) & mask: the low bits of the two's complement. */
    Py_ssize_t index = (Py_ssize_t)((size_t)hash & mask);
    if (index >= PyTuple_GET_SIZE(shards)) {
        PyErr_SetString(PyExc_ValueError, "decide_single(): mask beyond the shards");
        Py_DECREF(key);
        Py_DECREF(entry);
        return NULL;
    }
    PyObject *shard = PyTuple_GET_ITEM(shards, index);
    if (!PyTuple_CheckExact(shard) || PyTuple_GET_SIZE(shard) != 3) {
        PyErr_SetString(PyExc_TypeError, "decide_single(): a shard is (states, capacity, lock)");
        Py_DECREF(key);
        Py_DECREF(entry);
        return NULL;
    }
    PyObject *lock = PyTuple_GET_ITEM(shard, 2);
    if (locked && !Py_IS_TYPE(lock, &ShardLockType)) {
        PyErr_SetString(PyExc_TypeError, "decide_single(): a shard's lock must be a ShardLock");
        Py_DECREF(key);
        Py_DECREF(entry);
        return NULL;
    }
    if (locked) {
        shardlock_take((ShardLockObject *)lock);
    }
    PyObject *one[6] = {PyTuple_GET_ITEM(shard, 0), PyTuple_GET_ITEM(shard, 1), key,
                        PyTuple_GET_ITEM(entry, 1), now, check};
    PyObject *decision = decide_one(module, one, 6);
    if (locked) {
        shardlock_give((ShardLockObject *)lock); /* held by us: cannot fail */
    }
    Py_DECREF(key);
    Py_DECREF(entry);
    return decision;
}

static PyObject *
admit_one(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "admit_one(states, capacity, key, kernel, now, cost) takes 6 arguments");
        return NULL;
    }
    PyObject *states = args[0], *key = args[2], *kernel = args[3], *now = args[4];
    Py_ssize_t capacity = PyLong_AsSsize_t(args[1]);
    if (capacity == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *state = touch(states, capacity, key, kernel, now);
    if (state == NULL) {
        return NULL;
    }
    PyObject *call[4] = {kernel, state, now, args[5]};
    PyObject *result = PyObject_VectorcallMethod(str_acquire, call,
                                                 4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(state);
    return result;
}

static PyObject *
make_decision(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decision(allowed, outcomes, backend) takes 3 arguments");
        return NULL;
    }
    return new_decision(args[0], args[1], args[2]);
}

/* -- module ------------------------------------------------------------------ */

static PyObject *
speedups_register(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "register(outcome_class, decision_class)");
        return NULL;
    }
    PyTypeObject *bases[2] = {&OutcomeType, &DecisionType};
    for (int i = 0; i < 2; i++) {
        if (!PyType_Check(args[i]) || !PyType_IsSubtype((PyTypeObject *)args[i], bases[i])) {
            PyErr_Format(PyExc_TypeError, "register(): argument %d must subclass %s", i + 1,
                         bases[i]->tp_name);
            return NULL;
        }
        if (((PyTypeObject *)args[i])->tp_basicsize != bases[i]->tp_basicsize) {
            /* Only the C fields are filled here: a subclass with more slots would be half made. */
            PyErr_SetString(PyExc_TypeError, "register(): the classes must add no slots");
            return NULL;
        }
    }
    Py_XSETREF(outcome_class, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(decision_class, (PyTypeObject *)Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyObject *
in_main_interpreter(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(PyInterpreterState_Get() == PyInterpreterState_Main());
}

static PyMethodDef module_methods[] = {
    {"in_main_interpreter", in_main_interpreter, METH_NOARGS,
     "Whether this is the main interpreter: the module's state is one per process, so "
     "sub-interpreters (mod_wsgi's default) use the pure-Python kernels."},
    {"register", (PyCFunction)(void (*)(void))speedups_register, METH_FASTCALL,
     "register(outcome_class, decision_class): the classes the kernels build."},
    {"decide_one", (PyCFunction)(void (*)(void))decide_one, METH_FASTCALL,
     "decide_one(states, capacity, key, kernel, now, check) -> Decision: one check, "
     "its LRU entry touched; the caller holds the shard lock."},
    {"decide_single", (PyCFunction)(void (*)(void))decide_single, METH_FASTCALL,
     "decide_single(shards, mask, compiled, check, now, locked) -> Decision | None: "
     "LocalLimiter's one-check decision; None when the policy is not compiled yet."},
    {"decide_single_on_loop", (PyCFunction)(void (*)(void))decide_single_on_loop, METH_FASTCALL,
     "decide_single_on_loop(shards, mask, compiled, check, now, gate) -> Decision | None: "
     "LocalLimiter's one-check decision on its event loop, lock-free while the loop is alone."},
    {"admit_one", (PyCFunction)(void (*)(void))admit_one, METH_FASTCALL,
     "admit_one(states, capacity, key, kernel, now, cost) -> bool."},
    {"decision", (PyCFunction)(void (*)(void))make_decision, METH_FASTCALL,
     "decision(allowed, outcomes, backend) -> Decision, without keyword parsing."},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "resilience_django.limiting._speedups",
    .m_doc = "C versions of the limiting kernels' hot calls; see algorithms.py.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyTypeObject *types[] = {&OutcomeType, &DecisionType,  &SlidingWindowType, &TokenBucketType,
                             &GcraType,    &ShardLockType, &HandOffType};
    const char *names[] = {"Outcome", "Decision",  "SlidingWindow", "TokenBucket",
                           "Gcra",    "ShardLock", "HandOff"};
    str_cost = PyUnicode_InternFromString("cost");
    str_local = PyUnicode_InternFromString("local");
    float_zero = PyFloat_FromDouble(0.0);
    str_move_to_end = PyUnicode_InternFromString("move_to_end");
    str_new_state = PyUnicode_InternFromString("new_state");
    str_outcome = PyUnicode_InternFromString("outcome");
    str_acquire = PyUnicode_InternFromString("acquire");
    str_popitem = PyUnicode_InternFromString("popitem");
    str_policy = PyUnicode_InternFromString("policy");
    str_key = PyUnicode_InternFromString("key");
    if (str_cost == NULL || str_local == NULL || float_zero == NULL || str_move_to_end == NULL ||
        str_new_state == NULL || str_outcome == NULL || str_acquire == NULL ||
        str_popitem == NULL || str_policy == NULL || str_key == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (PyType_Ready(types[i]) < 0 ||
            PyModule_AddObjectRef(module, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(module);
            return NULL;
        }
    }
    return module;
}
