"""Write the climb explorer and a screenshot of each preset at its last round (headless Chromium).

    PYTHONPATH=. python scripts/climb_explorer_screenshots.py [--out reports/climb-explorer]

Writes OUT/explorer.html (``trpo-claims climb --html``) and OUT/<preset>.png for each preset
(played to the end, the start cell clicked), plus OUT/overshoot-switch30.png: the overshoot
preset switched to the trust region at round 30. The browser is started by tests/browser.py
(the one place that starts headless Chromium for the project), at a 1200 x 1000 viewport.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from claims.catalogue.climb.explorer import write_explorer
from trpo_ref.tabular.climb import PRESETS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import browser_unavailable, start_chromium  # tests/browser.py

WIDTH, HEIGHT = 1200, 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/climb-explorer"))
    args = parser.parse_args(argv)
    if (reason := browser_unavailable()) is not None:
        print(f"climb_explorer_screenshots: headless Chromium unavailable: {reason}",
              file=sys.stderr)
        return 2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    page = write_explorer(args.out / "explorer.html")
    print(f"wrote {page}")
    profile = Path(tempfile.mkdtemp(prefix="climb-shots-"))
    driver = start_chromium(profile, WIDTH, HEIGHT)
    try:
        driver.get(page.resolve().as_uri())

        def show(slug: str, switch_at: int | None = None) -> None:
            Select(driver.find_element(By.ID, "preset")).select_by_value(slug)
            if switch_at is not None:
                box = driver.find_element(By.ID, "switch-at")
                box.send_keys(Keys.CONTROL, "a")
                box.send_keys(str(switch_at))
                driver.find_element(By.ID, "switch-apply").click()
            rounds = next(p.rounds for p in PRESETS if p.slug == slug)
            for _ in range(rounds):
                driver.find_element(By.ID, "step").click()
            driver.find_element(By.CSS_SELECTOR, '#grid td[data-cell="0"]').click()

        for p in PRESETS:
            show(p.slug)
            shot = args.out / f"{p.slug}.png"
            driver.save_screenshot(str(shot))
            print(f"wrote {shot}")
        show("overshoot", switch_at=30)
        shot = args.out / "overshoot-switch30.png"
        driver.save_screenshot(str(shot))
        print(f"wrote {shot}")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
