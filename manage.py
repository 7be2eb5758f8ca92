#!/usr/bin/env python
import os
import sys


def thresholds_file(argv: list[str]) -> list[str]:
    """``replay --settings FILE`` names a file of thresholds, not Django's
    settings module (which Django would otherwise try to import): passed on
    as ``--thresholds FILE``."""
    if len(argv) < 2 or argv[1] != "replay":
        return argv
    found = list(argv)
    for index, word in enumerate(found):
        if word == "--settings" and index + 1 < len(found):
            found[index] = "--thresholds"
        elif word.startswith("--settings="):
            found[index] = "--thresholds=" + word.partition("=")[2]
    return found


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(thresholds_file(sys.argv))
