#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver are installed for the desk's browser test
# (tests/e2e/test_desk.py): the Debian packages chromium and chromium-driver, at /usr/bin/chromium
# and /usr/bin/chromedriver. Installs them with apt-get when missing (as root, or through sudo
# without a password prompt). When it cannot, it says so and exits 0: the browser test then skips,
# naming what is missing, and the rest of the suite runs.
set -u

have() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }

if have; then
  echo "browser: chromium and chromedriver are installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser: /usr/bin/chromium or /usr/bin/chromedriver is missing and apt-get is not available here;"
  echo "         install Chromium and a matching chromedriver there to run the desk's browser test (it skips)."
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "browser: /usr/bin/chromium or /usr/bin/chromedriver is missing, and installing them needs root:"
  echo "         sudo apt-get install -y chromium chromium-driver   (the desk's browser test skips until then)"
  exit 0
fi

echo "browser: installing chromium and chromium-driver with apt-get"
export DEBIAN_FRONTEND=noninteractive
if "${SUDO[@]}" apt-get update -qq &&
   "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
  if have; then
    echo "browser: chromium and chromedriver are installed"
    exit 0
  fi
fi
echo "browser: could not install chromium and chromium-driver with apt-get (offline? another apt running?);"
echo "         the desk's browser test skips until /usr/bin/chromium and /usr/bin/chromedriver exist."
exit 0
