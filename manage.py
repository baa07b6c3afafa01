#!/usr/bin/env python
"""Django's command-line utility for apim."""

import os
import sys


def main() -> None:
    from apim.settings.env import default_settings_module

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", default_settings_module())
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
