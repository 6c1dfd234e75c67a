"""The page in a real browser: headless Chromium (Selenium) against the app on a loopback port.
It opens an image, paints a stroke by dragging the mouse, completes it, downloads the PNG and
checks it (the input's size, the input's pixels outside the painted region, changed inside it);
at 1280x1000, 1024x768 and a 390x844 phone, scrolled to the result, nothing covers the result
image or the canvas (document.elementFromPoint at their corners); undo empties the stroke and redo
brings it back; and Cancel stops a running job. Skips where no browser starts.

SAVE_SCREENSHOT=1 saves the finished page to docs/images/webapp.png and the view at each size to
docs/images/webapp_WxH.png; WEBAPP_URL=http://HOST:PORT runs against a server already running
(`serve.py` with a trained model), WEBAPP_FACE=IMAGE paints a real face, WEBAPP_STROKE=X,Y,SCALE places
and scales the stroke, and WEBAPP_ITERATIONS=N asks for more iterations.
"""
from __future__ import annotations

import base64
import io
import os
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from webapp_support import face, running_server, service

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "images" / "webapp.png"
TIMEOUT = 120
VIEWS = [(1280, 1000, False), (1024, 768, False), (390, 844, True)]  # width, height, a phone

# Where the element's box (its corners, 12 px in: past its frame's rounded corners, and its centre) is
# not the element itself: what covers it, or why it cannot be seen; scrolled first so that the element
# is at the view's top (block "start") or bottom ("end"), as a reader scrolls to it.
UNCOVERED_JS = """
const [id, block] = arguments, el = document.getElementById(id);
el.scrollIntoView({block: block, inline: "nearest"});
const r = el.getBoundingClientRect();
if (r.width < 32 || r.height < 32) return [`${id} is ${r.width}x${r.height}`];
if (r.top < -0.5 || r.left < -0.5 || r.bottom > innerHeight + 0.5 || r.right > innerWidth + 0.5)
  return [`${id} at ${JSON.stringify(r)} is not inside the ${innerWidth}x${innerHeight} view`];
const inset = 12;
const points = [[r.left + inset, r.top + inset], [r.right - inset, r.top + inset], [r.left + inset, r.bottom - inset],
                [r.right - inset, r.bottom - inset], [(r.left + r.right) / 2, (r.top + r.bottom) / 2]];
const name = (node) => node ? node.tagName.toLowerCase() + (node.id ? "#" + node.id : "") +
  (node.className && typeof node.className === "string" ? "." + node.className.split(" ").join(".") : "") : "nothing";
return points.filter(([x, y]) => {
    const hit = document.elementFromPoint(x, y);
    return hit !== el && !el.contains(hit);
  }).map(([x, y]) => `${id} at (${Math.round(x)}, ${Math.round(y)}) is under ${name(document.elementFromPoint(x, y))}`);
"""


def chrome(download_dir: Path):
    """A headless Chromium driver, or skip with the reason."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service as ChromeService
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    binary = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                   if shutil.which(name)), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no Chromium and chromedriver on PATH (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    try:
        driver = webdriver.Chrome(options=options, service=ChromeService(driver_path))
    except WebDriverException as error:
        pytest.skip(f"Chromium does not start here: {str(error).splitlines()[0]}")
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


@pytest.fixture(scope="module")
def app_url():
    from dcgan_completion.serving.app import create_app

    if os.environ.get("WEBAPP_URL"):  # a server already running, e.g. with a trained model
        yield os.environ["WEBAPP_URL"].rstrip("/")
        return
    made = service()
    with running_server(create_app(made)) as url:
        yield url
    made.stop()


def set_view(driver, width: int, height: int, phone: bool = False) -> None:
    """The page's viewport at width x height CSS pixels (a phone's: its meta viewport applies)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone})
    time.sleep(0.4)  # the page fits its canvas to the new size


def covered(driver, element_id: str) -> list[str]:
    return [problem for block in ("start", "end") for problem in driver.execute_script(UNCOVERED_JS, element_id, block)]


def wait(driver, condition, timeout: float = TIMEOUT, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d), what)


def test_paint_complete_download_and_undo(app_url, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    source = os.environ.get("WEBAPP_FACE")
    image = np.asarray(Image.open(source).convert("RGB")) if source else face(21, size=48, width=40)
    path = tmp_path / "portrait.png"
    Image.fromarray(image).save(path)
    height, width = image.shape[:2]

    driver = chrome(downloads)
    try:
        set_view(driver, *VIEWS[0])
        driver.get(app_url)
        wait(driver, lambda d: "model" in d.find_element(By.ID, "model-info").text, what="model info")
        driver.find_element(By.ID, "file").send_keys(str(path))
        wait(driver, lambda d: d.find_element(By.ID, "canvas-wrap").is_displayed(), what="the image")
        assert f"{width}×{height}" in driver.find_element(By.ID, "image-size").text
        iterations = os.environ.get("WEBAPP_ITERATIONS")
        if iterations:
            field = driver.find_element(By.ID, "n_iter")
            field.clear()
            field.send_keys(iterations)

        # A rectangle by dragging: across the middle, down a little, and back. WEBAPP_STROKE=X,Y,SCALE moves its
        # centre to (X, Y) (shares of the image from its centre) and scales it, e.g. over one eye of a photo.
        x, y, scale = map(float, os.environ.get("WEBAPP_STROKE", "0,0.02,1").split(","))
        overlay = driver.find_element(By.ID, "overlay-canvas")
        shown_w, shown_h = overlay.size["width"], overlay.size["height"]
        slider = driver.find_element(By.ID, "brush-size")
        driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                              slider, max(4, int(shown_w * 0.12 * scale)))
        drag = ActionChains(driver, duration=20)
        drag.move_to_element_with_offset(overlay, int(shown_w * (x - 0.18 * scale)),
                                         int(shown_h * (y - 0.04 * scale))).click_and_hold()
        for _ in range(6):
            drag.move_by_offset(int(shown_w * 0.06 * scale), 0)
        drag.move_by_offset(0, int(shown_h * 0.08 * scale))
        for _ in range(6):
            drag.move_by_offset(-int(shown_w * 0.06 * scale), 0)
        drag.release().perform()
        painted = mask_of(driver)
        assert painted.shape == (height, width) and 0 < painted.sum() < 0.5 * painted.size
        assert not driver.find_element(By.ID, "undo").get_property("disabled")

        driver.find_element(By.ID, "complete").click()
        link = driver.find_element(By.ID, "download-png")
        wait(driver, lambda d: link.get_attribute("hidden") is None or "Failed" in d.find_element(By.ID, "status").text,
             what="the result")
        assert link.get_attribute("hidden") is None, driver.find_element(By.ID, "status").text
        assert driver.execute_script("return document.getElementById('result-view').complete")
        time.sleep(1.0)  # the page scrolls the result into view
        link.click()
        target = downloads / "portrait-completed.png"
        wait(driver, lambda d: target.exists() and target.stat().st_size > 0, timeout=30, what="the download")
        time.sleep(0.2)
        result = np.asarray(Image.open(target).convert("RGB"))
        assert result.shape == image.shape
        assert (result[~painted] == image[~painted]).all()  # kept exactly where nothing was painted
        assert (result[painted] != image[painted]).any()     # filled where it was painted
        gif = driver.execute_script("return fetch(arguments[0]).then(r => r.status)",
                                    driver.find_element(By.ID, "download-gif").get_attribute("href"))
        assert gif == 200

        save = os.environ.get("SAVE_SCREENSHOT") == "1"
        if not os.environ.get("WEBAPP_URL"):  # the badge of a model that says what it knows (the shipped one's)
            from dcgan_completion.networks.storage import SHIPPED_KNOWS
            driver.execute_script("document.getElementById('model-info').textContent += ' · knows ' + arguments[0]",
                                  SHIPPED_KNOWS)
        for width, height, phone in VIEWS:  # nothing covers the result or the canvas, at any size
            set_view(driver, width, height, phone)
            assert covered(driver, "result-view") + covered(driver, "overlay-canvas") == [], (width, height)
            # and nothing is wider than the screen (a phone would shrink the whole page to fit it)
            assert driver.execute_script("return document.documentElement.scrollWidth") <= width, (width, height)
            if save:
                driver.execute_script("document.getElementById('results').scrollIntoView({block: 'end'})")
                time.sleep(0.2)
                driver.save_screenshot(str(SCREENSHOT.with_name(f"webapp_{width}x{height}.png")))
        set_view(driver, *VIEWS[0])
        if save:  # the whole page, at the first size's width
            set_view(driver, VIEWS[0][0], driver.execute_script("return document.documentElement.scrollHeight"))
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(str(SCREENSHOT))
            set_view(driver, *VIEWS[0])

        driver.find_element(By.ID, "undo").click()
        assert not mask_of(driver).any()  # the stroke is gone
        assert driver.find_element(By.ID, "undo").get_property("disabled")
        driver.find_element(By.ID, "redo").click()
        assert (mask_of(driver) == painted).all()

        # Cancel while it runs: the job ends cancelled, and the page can complete again.
        cancel = driver.find_element(By.ID, "cancel")
        assert not cancel.is_displayed()
        field = driver.find_element(By.ID, "n_iter")
        field.clear()
        field.send_keys("2000")
        driver.find_element(By.ID, "complete").click()
        wait(driver, lambda d: cancel.is_displayed() and "Completing" in d.find_element(By.ID, "status").text,
             what="the job running")
        cancel.click()
        wait(driver, lambda d: d.find_element(By.ID, "status").text == "Cancelled.", what="the cancel")
        job = driver.execute_script("return fetch(`/api/jobs/${state.job.id}`).then(r => r.json())")
        assert job["state"] == "cancelled" and job["iteration"] < 2000, job
        assert not cancel.is_displayed() and driver.find_element(By.ID, "complete").is_enabled()
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()


def test_a_photo_opened_with_the_switch_untouched_is_filled_through_its_faces(app_url, tmp_path):
    """Grace Hopper's whole photo opened as a new user opens it: the server's decision turns the Whole photo
    switch on by itself (its tooltip says why), a stroke across her face is completed through her face (the
    job is a photo job whose first note says so), and the result keeps every unpainted pixel."""
    from matplotlib import cbook
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    if os.environ.get("WEBAPP_URL"):
        pytest.skip("the decision's note is checked against the test's own server")
    photo = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    image = np.asarray(Image.open(photo).convert("RGB"))
    driver = chrome(tmp_path)
    try:
        set_view(driver, *VIEWS[0])
        driver.get(app_url)
        wait(driver, lambda d: "model" in d.find_element(By.ID, "model-info").text, what="model info")
        switch = driver.find_element(By.ID, "photo")
        assert not switch.is_selected()
        driver.find_element(By.ID, "file").send_keys(str(photo))
        wait(driver, lambda d: switch.is_selected(), what="the server's decision on the switch")
        assert "whole photo" in driver.find_element(By.ID, "image-size").text
        assert "not square" in switch.find_element(By.XPATH, "..").get_attribute("title")

        overlay = driver.find_element(By.ID, "overlay-canvas")
        shown_w, shown_h = overlay.size["width"], overlay.size["height"]
        drag = ActionChains(driver, duration=20)  # across her nose, from cheek to cheek
        drag.move_to_element_with_offset(overlay, int(-shown_w * 0.08), int(-shown_h * 0.12)).click_and_hold()
        for _ in range(4):
            drag.move_by_offset(int(shown_w * 0.04), 0)
        drag.release().perform()
        painted = mask_of(driver)
        assert 0 < painted.sum() < 0.1 * painted.size

        driver.find_element(By.ID, "complete").click()
        link = driver.find_element(By.ID, "download-png")
        wait(driver, lambda d: link.get_attribute("hidden") is None or "Failed" in d.find_element(By.ID, "status").text,
             what="the result")
        assert link.get_attribute("hidden") is None, driver.find_element(By.ID, "status").text
        job = driver.execute_script("return fetch(`/api/jobs/${state.job.id}`).then(r => r.json())")
        assert job["kind"] == "photo" and job["faces"] == 1, job
        with urllib.request.urlopen(f"{app_url}/api/jobs/{job['id']}/result.png", timeout=30) as response:
            result = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
        assert result.shape == image.shape and (result[~painted] == image[~painted]).all()
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()


def mask_of(driver) -> np.ndarray:
    """The page's mask, bool (H, W): True where painted (to fill), as the server reads it."""
    from dcgan_completion.completion import masks as masking

    url = driver.execute_script("return state.mask.toDataURL('image/png')")
    data = io.BytesIO(base64.b64decode(url.split(",", 1)[1]))
    height, width = Image.open(data).size[::-1]
    data.seek(0)
    try:
        return masking.read_photo_mask(data, height, width)[:, :, 0] < 0.5
    except Exception as error:  # nothing painted: masking calls an all-white mask an error
        if "all white" in str(error):
            return np.zeros((height, width), bool)
        raise
