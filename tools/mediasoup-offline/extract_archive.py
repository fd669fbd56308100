#!/usr/bin/env python3
"""Extract a Debian static archive's objects next to this script; print their paths.

Called by the stub subprojects at configure time. The worker `link_whole`s its
dependencies, and meson can only do that with a real `static_library` target,
so the stubs rebuild one from the system archive's objects.

usage: extract_archive.py ARCHIVE_NAME DEBIAN_PACKAGE [--redefine-sym OLD=NEW]

With --redefine-sym, every extracted object's references to OLD are renamed to
NEW (objcopy), so a shim of ours can stand between those objects and OLD.
"""

import os
import subprocess
import sys


def main():
    name, package = sys.argv[1], sys.argv[2]
    redefine = sys.argv[4] if len(sys.argv) == 5 and sys.argv[3] == "--redefine-sym" else None
    cc = os.environ.get("CC", "cc").split()[0]
    found = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True, check=True).stdout.strip()
    if not os.path.isabs(found) or not os.path.isfile(found):
        sys.stderr.write(f"{name} not found: install the Debian package {package} (./scripts/setup.sh does)\n")
        return 1
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "objects", name)
    os.makedirs(out, exist_ok=True)
    members = subprocess.run(["ar", "t", found], capture_output=True, text=True, check=True).stdout.split()
    if len(set(members)) != len(members):
        sys.stderr.write(f"{found} has duplicate member names; extracting it would lose objects\n")
        return 1
    subprocess.run(["ar", "x", f"--output={out}", found], check=True)
    for member in members:
        path = os.path.join(out, member)
        if redefine:
            subprocess.run(["objcopy", f"--redefine-sym={redefine}", path], check=True)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
