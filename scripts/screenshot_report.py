"""Render a run's report with headless Chromium and save a PNG screenshot (for the docs).

    python scripts/screenshot_report.py RUN_DIR OUT.png [--width 1200]

The report is built into a temporary file (the run directory is left as it is). Needs
``selenium`` and Chromium with its driver (Debian: ``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ganforge.report import write_report


def find_chromium() -> tuple[str, str]:
    """Paths of the Chromium binary and of chromedriver; raises SystemExit when either is missing."""
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        raise SystemExit("needs Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


def screenshot(run_dir: Path, out: Path, width: int = 1200) -> Path:
    """Build the report of ``run_dir`` and save a full-page screenshot of it to ``out``."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise SystemExit("needs selenium: pip install selenium") from None
    browser, driver_path = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},900"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as tmp:
        page = write_report(run_dir, Path(tmp) / "report.html")
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            driver.get(page.resolve().as_uri())
            height = driver.execute_script("return document.documentElement.scrollHeight")
            # the sticky navigation bar would be repeated in a stitched capture: grow the window instead
            driver.set_window_size(width, min(int(height) + 40, 30000))
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
        finally:
            driver.quit()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a ganforge run directory")
    parser.add_argument("out", type=Path, help="where to save the PNG")
    parser.add_argument("--width", type=int, default=1200, help="browser window width in CSS pixels")
    args = parser.parse_args(argv)
    path = screenshot(args.run_dir, args.out, args.width)
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
