#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make install / make uninstall, as a user runs them:
#  - PREFIX=/tmp/...: bin/quiver --help works, `man -l` renders quiver(1),
#    systemd-analyze verify accepts quiver.service, the docs and LICENSE are there;
#  - DESTDIR with PREFIX=/usr/local: everything lands under DESTDIR, and the unit
#    names /usr/local/bin/quiver and /etc/default/quiver;
#  - make uninstall removes what was installed and keeps the settings file.
# Usage: test_install.sh SOURCE_DIR BUILD_DIR (the directory holding quiver).
set -euo pipefail

src=$1
bin=$2
tmp=$(mktemp -d /tmp/qv-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
has() { grep -q -- "$2" "$1" || fail "$1 does not hold: $2"; }

mk() { make -s --no-print-directory -C "$src" BUILD_DIR="$bin" "$@"; }

# ---- PREFIX ----
p=$tmp/q
mk install-only PREFIX="$p"
for f in bin/quiver share/man/man1/quiver.1 lib/systemd/system/quiver.service \
         etc/default/quiver share/doc/quiver/README.md share/doc/quiver/LICENSE \
         share/doc/quiver/docs/routing.md; do
  [ -e "$p/$f" ] || fail "make install did not install $f"
done
[ -x "$p/bin/quiver" ] || fail "bin/quiver is not executable"
"$p/bin/quiver" --help > "$tmp/help.txt" || fail "quiver --help exited $?"
has "$tmp/help.txt" "usage: quiver"
"$p/bin/quiver" rollout --help > "$tmp/help.txt"
has "$tmp/help.txt" "--step-seconds"

# The man page renders, without groff warnings, and holds every command's help.
MANWIDTH=80 man --warnings -l "$p/share/man/man1/quiver.1" > "$tmp/man.txt" 2> "$tmp/man.err" \
  || fail "man -l failed: $(cat "$tmp/man.err")"
[ ! -s "$tmp/man.err" ] || fail "man -l warned: $(cat "$tmp/man.err")"
has "$tmp/man.txt" "QUIVER(1)"
for cmd in serve models route label promote rollback events rollout version help; do
  has "$tmp/man.txt" "quiver $cmd"
done
has "$tmp/man.txt" "--step-seconds"
has "$tmp/man.txt" "QUIVER_TOKEN"
has "$tmp/man.txt" "EXIT STATUS"

# The unit: paths of this PREFIX, the settings file, restart and hardening.
u=$p/lib/systemd/system/quiver.service
has "$u" "^ExecStart=$p/bin/quiver serve --repo \${QUIVER_REPO} --data \${QUIVER_DATA}"
has "$u" "^EnvironmentFile=$p/etc/default/quiver$"
has "$u" "^Restart=on-failure$"
has "$u" "^NoNewPrivileges=yes$"
has "$u" "^ProtectSystem=strict$"
has "$u" "^DynamicUser=yes$"
has "$u" "^ReadWritePaths="
has "$p/etc/default/quiver" "^QUIVER_REPO="
has "$p/etc/default/quiver" "^QUIVER_DATA="
MANPATH="$p/share/man:" systemd-analyze verify "$u" > "$tmp/verify.txt" 2>&1 \
  || fail "systemd-analyze verify: $(cat "$tmp/verify.txt")"

# A second install keeps an edited settings file.
echo "QUIVER_OPTS=--access-log -" >> "$p/etc/default/quiver"
mk install-only PREFIX="$p"
has "$p/etc/default/quiver" "access-log"

mk uninstall PREFIX="$p"
for f in bin/quiver share/man/man1/quiver.1 lib/systemd/system/quiver.service share/doc/quiver; do
  [ ! -e "$p/$f" ] || fail "make uninstall left $f"
done
[ -e "$p/etc/default/quiver" ] || fail "make uninstall removed the settings file"

# ---- DESTDIR ----
d=$tmp/stage
mk install-only DESTDIR="$d" PREFIX=/usr/local
for f in usr/local/bin/quiver usr/local/share/man/man1/quiver.1 \
         usr/local/lib/systemd/system/quiver.service etc/default/quiver \
         usr/local/share/doc/quiver/README.md; do
  [ -e "$d/$f" ] || fail "make install DESTDIR did not install $f"
done
has "$d/usr/local/lib/systemd/system/quiver.service" "^ExecStart=/usr/local/bin/quiver serve"
has "$d/usr/local/lib/systemd/system/quiver.service" "^EnvironmentFile=/etc/default/quiver$"
mk uninstall DESTDIR="$d" PREFIX=/usr/local
[ ! -e "$d/usr/local/bin/quiver" ] || fail "make uninstall DESTDIR left bin/quiver"

[ -f "$src/LICENSE" ] && grep -q "MIT License" "$src/LICENSE" || fail "no MIT LICENSE"
echo "install: ok"
