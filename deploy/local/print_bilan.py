"""Open the bilan as a manager would, from a report link, in headless Chromium: a
screenshot of the page and the page printed to PDF (A4), plus one PNG per printed page
when pdftoppm is there. What to look at before publishing a bilan, and how the print CSS
is checked.

    make print-bilan YEAR=2023 [PROGRAMME=fnavdl]    (the stack running: make run)

Token: ALFI_TOKEN, else .local/dev-token (make run writes it); stats at ALFI_STATS_URL
(http://127.0.0.1:8004). Files in .local/bilan/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def link(stats: str, token: str, year: int) -> str:
    request = urllib.request.Request(
        f"{stats}/v1/reports/links", data=json.dumps({"year": year, "expires_in_minutes": 10}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local stack's URL
        return stats + json.load(response)["url"]


def chromium(*arguments: str) -> None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        sys.exit("Chromium is missing: make chromium (Debian's chromium and poppler-utils)")
    subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *arguments],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("year", type=int)
    parser.add_argument("--programme", help="the funders' view of this programme instead of the whole bilan")
    parser.add_argument("--out", type=Path, default=REPO / ".local" / "bilan")
    args = parser.parse_args()
    stats = os.environ.get("ALFI_STATS_URL", "http://127.0.0.1:8004").rstrip("/")
    token_file = REPO / ".local" / "dev-token"
    token = os.environ.get("ALFI_TOKEN") or (token_file.read_text().strip() if token_file.exists() else "")
    if not token:
        sys.exit("No token: start the stack with `make run` (it writes .local/dev-token) or set ALFI_TOKEN.")
    url = link(stats, token, args.year)
    if args.programme:  # the funders' view, opened with the same link
        url = url.replace(f"/reports/{args.year}?", f"/reports/{args.year}/funders/{args.programme}?")
    name = f"bilan-{args.year}" + (f"-{args.programme}" if args.programme else "")
    args.out.mkdir(parents=True, exist_ok=True)
    screen, pdf = args.out / f"{name}-screen.png", args.out / f"{name}.pdf"
    chromium("--window-size=1280,5200", f"--screenshot={screen}", url)
    chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", url)
    print(f"{screen}\n{pdf}")
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-r", "80", "-png", str(pdf), str(args.out / f"{name}-page")], check=True)
        for page in sorted(args.out.glob(f"{name}-page-*.png")):
            print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
