"""Prepares the demo: sample admin rules, and a superuser with a random password printed once."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from demo_project.orders import samples


class Command(BaseCommand):
    help = (
        "Load the sample admin rules and create the demo superuser (random password, shown once)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for created in samples.load():
            self.stdout.write(f"loaded sample {created}")
        user_model = get_user_model()
        if user_model.objects.filter(username="demo").exists():
            self.stdout.write(
                "demo superuser exists; reset with: python manage.py changepassword demo"
            )
        else:
            # Never a fixed password: a demo left running must not be an open door.
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser("demo", "demo@example.invalid", password)
            self.stdout.write(
                self.style.SUCCESS(f"demo superuser: demo / {password}  (shown once; keep it)")
            )
        self.stdout.write("serving on http://127.0.0.1:8000/ (admin at /admin/, chaos at /chaos/)")
