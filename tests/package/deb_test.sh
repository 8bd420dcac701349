#!/usr/bin/env bash
# deb_install: builds the prism and prism-plugin-sdk packages from a built tree, installs
# them with dpkg, runs the installed prismd on the installed /etc/prism/prism.yaml (as the
# prism user, as the systemd unit does; CI has no systemd), drives it with prismctl, builds
# examples/hello-plugin against the installed SDK and loads it, then purges both packages
# and checks that nothing is left: no user, no /var/lib/prism, no /etc/prism.
#
#   tests/package/deb_test.sh BUILD_DIR [SOURCE_DIR]
#
# It changes the system, so it runs only as root with dpkg (exit 77, "skipped", otherwise)
# and only when no prism package, user or state is there already. ctest runs it alone
# (RUN_SERIAL): while the packages are installed, /etc/prism is the system config.
set -euo pipefail

build=$(cd "${1:?usage: deb_test.sh BUILD_DIR [SOURCE_DIR]}" && pwd)
src=$(cd "${2:-$(dirname "$0")/../..}" && pwd)
port=7777

skip() { echo "deb_test: SKIP: $*"; exit 77; }
fail() { echo "deb_test: FAIL: $*" >&2; exit 1; }
step() { echo "deb_test: $*"; }

# ---- preconditions: skip rather than touch a machine we do not own --------------------
[[ $(id -u) -eq 0 ]] || skip "needs root (it installs and purges .deb packages)"
for tool in dpkg dpkg-deb dpkg-shlibdeps cpack cmake setpriv ss; do
  command -v "$tool" >/dev/null || skip "$tool is not available"
done
[[ -f $build/CPackConfig.cmake ]] || fail "$build/CPackConfig.cmake missing: configure the tree first"
for pkg in prism prism-plugin-sdk; do
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'installed\|config-files'; then
    skip "package $pkg is already on this machine; not replacing it"
  fi
done
if getent passwd prism >/dev/null || getent group prism >/dev/null || [[ -e /var/lib/prism ]] \
    || [[ -e /etc/prism ]] || [[ -e /usr/lib/prism ]]; then
  skip "a prism user, group, /var/lib/prism, /etc/prism or /usr/lib/prism exists without the package" \
       "(left by an interrupted run? remove them by hand)"
fi
if [[ -n $(ss -Hlnu "sport = :$port") ]]; then
  skip "something already listens on UDP port $port: $(ss -Hlnup "sport = :$port" | head -1)"
fi

work=$(mktemp -d /tmp/prism-deb-test.XXXXXX)
prismd_pid=""
installed=0

stop_prismd() {
  [[ -n $prismd_pid ]] || return 0
  local pid=$prismd_pid status=0
  prismd_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  return "$status"
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n $prismd_pid ]]; then stop_prismd; fi
  if ((installed)); then
    rm -f /usr/lib/prism/plugins/hello.so
    dpkg --purge prism-plugin-sdk prism >"$work/purge-cleanup.log" 2>&1 \
      || cat "$work/purge-cleanup.log" >&2
  fi
  if ((rc != 0)) && [[ -f $work/prismd.log ]]; then
    echo "deb_test: prismd log:" >&2
    sed 's/^/  /' "$work/prismd.log" >&2
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Starts the installed prismd as the prism user on the installed config and waits for
# its `event=listening` line (docs/operations.md §4), or fails if it exits first.
start_prismd() {
  : >"$work/prismd.log"
  setpriv --reuid=prism --regid=prism --init-groups -- \
    /usr/bin/prismd --config /etc/prism/prism.yaml 2>>"$work/prismd.log" &
  prismd_pid=$!
  local deadline=$((SECONDS + 30))
  until grep -q "event=listening udp=127.0.0.1:$port" "$work/prismd.log"; do
    if ! kill -0 "$prismd_pid" 2>/dev/null; then
      local status=0
      wait "$prismd_pid" || status=$?
      prismd_pid=""
      fail "prismd exited with status $status before listening"
    fi
    ((SECONDS < deadline)) || fail "prismd did not log event=listening within 30 s"
    sleep 0.1
  done
}

expect_output() {  # expect_output NEEDLE COMMAND...: runs it, needs status 0 and NEEDLE in stdout
  local needle=$1 out
  shift
  out=$("$@" 2>&1) || fail "'$*' failed: $out"
  grep -qF -- "$needle" <<<"$out" || fail "'$*' printed no '$needle': $out"
  printf '  $ %s\n  %s\n' "$*" "${out//$'\n'/$'\n'  }"
}

mode_owner() { stat -c '%a %U:%G' "$1"; }

# ---- build and install ---------------------------------------------------------------
step "building the packages from $build"
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/pkgs" >"$work/cpack.log" 2>&1 \
  || { cat "$work/cpack.log" >&2; fail "cpack failed"; }
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
arch=$(dpkg --print-architecture)
server_deb="$work/pkgs/prism_${version}_${arch}.deb"
sdk_deb="$work/pkgs/prism-plugin-sdk_${version}_${arch}.deb"
[[ -f $server_deb && -f $sdk_deb ]] || fail "expected $(basename "$server_deb") and $(basename "$sdk_deb"), got: $(ls "$work/pkgs")"

if command -v lintian >/dev/null; then
  step "lintian"
  lintian --fail-on error "$server_deb" "$sdk_deb" \
    >"$work/lintian.log" 2>&1 || { cat "$work/lintian.log" >&2; fail "lintian reported errors"; }
  sed 's/^/  /' "$work/lintian.log"
else
  step "lintian is not installed; not checking the packages with it"
fi

step "installing $(basename "$server_deb") and $(basename "$sdk_deb")"
installed=1
if ! dpkg -i "$server_deb" "$sdk_deb" >"$work/dpkg.log" 2>&1; then
  # Missing dependencies leave the packages unconfigured; apt-get pulls them and
  # configures them.
  command -v apt-get >/dev/null || { cat "$work/dpkg.log" >&2; fail "dpkg -i failed"; }
  DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq >>"$work/dpkg.log" 2>&1 \
    || { cat "$work/dpkg.log" >&2; fail "dpkg -i and apt-get -f install failed"; }
fi
for pkg in prism prism-plugin-sdk; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg") == "install ok installed" ]] \
    || { cat "$work/dpkg.log" >&2; fail "$pkg is not installed and configured"; }
done

# ---- what the packages put on the system -----------------------------------------------
step "checking the installed files"
for f in /usr/bin/prismd /usr/bin/prismctl /usr/lib/prism/plugins/default.so \
    /etc/prism/prism.yaml /lib/systemd/system/prismd.service \
    /usr/share/doc/prism/copyright /usr/share/doc/prism-plugin-sdk/copyright \
    /usr/include/prism/plugin.h /usr/include/prism/plugin.hpp \
    /usr/share/cmake/PrismPluginSDK/PrismPluginSDKConfig.cmake; do
  [[ -f $f ]] || fail "$f is missing"
done
conffiles=$(dpkg-query -W -f='${Conffiles}' prism)
grep -q '/etc/prism/prism.yaml ' <<<"$conffiles" || fail "/etc/prism/prism.yaml is not a conffile: $conffiles"
for f in /etc/prism/plugins.d/*.yaml; do
  grep -q "$f " <<<"$conffiles" || fail "$f is not a conffile"
done
grep -qx 'state_dir: /var/lib/prism' /etc/prism/prism.yaml || fail "prism.yaml: state_dir is not /var/lib/prism"
grep -qx '  dir: /usr/lib/prism/plugins' /etc/prism/prism.yaml || fail "prism.yaml: plugins.dir is not /usr/lib/prism/plugins"
grep -qx '  config_dir: /etc/prism/plugins.d' /etc/prism/prism.yaml || fail "prism.yaml: plugins.config_dir is not /etc/prism/plugins.d"
expect_output ": OK" /usr/bin/prismd --config /etc/prism/prism.yaml --check-config
grep -qx 'User=prism' /lib/systemd/system/prismd.service || fail "prismd.service does not run as prism"
grep -qx 'ExecStart=/usr/bin/prismd --config /etc/prism/prism.yaml' /lib/systemd/system/prismd.service \
  || fail "prismd.service: unexpected ExecStart"

if command -v deb-systemd-helper >/dev/null; then
  [[ -L /etc/systemd/system/multi-user.target.wants/prismd.service ]] \
    || fail "postinst did not enable prismd.service (deb-systemd-helper is installed)"
fi
getent passwd prism >/dev/null || fail "postinst did not create the prism user"
getent group prism >/dev/null || fail "postinst did not create the prism group"
[[ $(mode_owner /var/lib/prism) == "700 prism:prism" ]] || fail "/var/lib/prism is $(mode_owner /var/lib/prism)"
[[ $(mode_owner /var/lib/prism/server.key) == "600 prism:prism" ]] \
  || fail "server.key is $(mode_owner /var/lib/prism/server.key)"
grep -qE '^prism1:[0-9a-f]{64}$' /var/lib/prism/server.pub || fail "server.pub: $(cat /var/lib/prism/server.pub)"
[[ $(mode_owner /etc/prism/admin.token) == "640 root:prism" ]] \
  || fail "admin.token is $(mode_owner /etc/prism/admin.token)"
grep -qE '^[0-9a-f]{64}$' /etc/prism/admin.token || fail "admin.token does not hold 64 hex digits"

# Installing again (as an upgrade would) keeps the key and the token.
key_before=$(cat /var/lib/prism/server.key /var/lib/prism/server.pub /etc/prism/admin.token | sha256sum)
dpkg -i "$server_deb" >"$work/dpkg-again.log" 2>&1 || { cat "$work/dpkg-again.log" >&2; fail "reinstall failed"; }
[[ $(cat /var/lib/prism/server.key /var/lib/prism/server.pub /etc/prism/admin.token | sha256sum) == "$key_before" ]] \
  || fail "reinstalling replaced the server key or the admin token"

# ---- the installed prismd, driven by the installed prismctl ---------------------------
step "starting /usr/bin/prismd --config /etc/prism/prism.yaml as prism"
start_prismd
if grep -qx '  token_file: /etc/prism/admin.token' /etc/prism/prism.yaml; then
  grep -q 'event=admin_token file=/etc/prism/admin.token created=false' "$work/prismd.log" \
    || fail "prismd did not read the admin token postinst created"
fi
expect_output "pong from 127.0.0.1:$port" /usr/bin/prismctl ping
expect_output "/usr/lib/prism/plugins/default.so" /usr/bin/prismctl plugins
expect_output '{"x":1}' /usr/bin/prismctl call default echo '{"x":1}'

# ---- an out-of-tree plugin built against the installed SDK -----------------------------
step "building examples/hello-plugin against the installed SDK"
cp -r "$src/examples/hello-plugin" "$work/hello-src"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if ! cmake -S "$work/hello-src" -B "$work/hello-build" "${generator[@]}" \
      -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON >"$work/hello.log" 2>&1 \
    || ! cmake --build "$work/hello-build" >>"$work/hello.log" 2>&1; then
  cat "$work/hello.log" >&2
  fail "hello-plugin did not build against the installed SDK"
fi
sdk_dir=$(sed -n 's/^PrismPluginSDK_DIR:PATH=//p' "$work/hello-build/CMakeCache.txt")
[[ $sdk_dir == /usr/share/cmake/PrismPluginSDK ]] || fail "hello-plugin found the SDK in '$sdk_dir'"
[[ -f $work/hello-build/plugins/hello.so ]] || fail "hello-plugin built no plugins/hello.so"
install -m 0644 "$work/hello-build/plugins/hello.so" /usr/lib/prism/plugins/hello.so

step "restarting prismd to load hello.so"
stop_prismd || fail "prismd did not stop cleanly on SIGTERM (status $?)"
start_prismd
expect_output "/usr/lib/prism/plugins/hello.so" /usr/bin/prismctl plugins
expect_output "hello, world" /usr/bin/prismctl call hello greet world
stop_prismd || fail "prismd did not stop cleanly on SIGTERM (status $?)"

# ---- purge: nothing left behind ---------------------------------------------------------
step "purging the packages"
rm -f /usr/lib/prism/plugins/hello.so
installed=0
dpkg --purge prism-plugin-sdk prism >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
for pkg in prism prism-plugin-sdk; do
  ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'installed\|config-files' \
    || fail "$pkg is still known to dpkg after purge"
done
! getent passwd prism >/dev/null || fail "the prism user is still there after purge"
! getent group prism >/dev/null || fail "the prism group is still there after purge"
for path in /var/lib/prism /etc/prism /usr/lib/prism /usr/include/prism \
    /usr/share/cmake/PrismPluginSDK /lib/systemd/system/prismd.service \
    /etc/systemd/system/multi-user.target.wants/prismd.service; do
  [[ ! -e $path && ! -L $path ]] || fail "$path is still there after purge"
done

step "PASS"
