"""A real browser through a real tunnel: headless Chromium, driven by selenium, uses JupyterLab
on the sandbox through the exact SSH tunnel command `notebook start` printed.

The tunnel goes through a throw-away sshd (tests/throwaway_sshd.py) standing in for the edge
node; the only thing added to the printed command is ``-F`` with that server's client config.
Phase 1: a notebook made from the launcher runs ``1+1``, shows ``2`` and is saved (checked
through the contents API). Phase 2: the server is stopped and a new server on the same
workspace shows that notebook with its output. Screenshots are kept under
``$SKEIN_JUPYTER_TEST_ARTIFACTS`` (default ``test-artifacts/``).
"""
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from skein_jupyter.cli import cli
from throwaway_sshd import ThrowawaySshd

pytestmark = pytest.mark.yarn

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NOTEBOOK = "browser-test.ipynb"



def _artifacts():
    path = Path(os.environ.get("SKEIN_JUPYTER_TEST_ARTIFACTS", "test-artifacts")).absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _screenshot(driver, name):
    path = _artifacts() / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _start(env_url, workspace):
    """`notebook start --json` in-process: the printed server, tunnel command and laptop URL."""
    args = ["notebook", "start", "--env", env_url, "--lab", "--memory", "1GiB", "--timeout", "600", "--json", "--quiet"]
    args += ["--workspace", workspace]
    began = time.monotonic()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    print(f"notebook start: {time.monotonic() - began:.1f}s")
    return json.loads(result.output)


def _api(base, token, path, timeout=10):
    request = urllib.request.Request(f"{base}/{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def _through_tunnel(tunnel, base, token, timeout=60):
    """Wait until the server answers through the tunnel (ssh may take a moment to listen)."""
    deadline = time.monotonic() + timeout
    while True:
        if not tunnel.alive():
            pytest.fail(f"the tunnel ended: {tunnel.why_dead()}")
        try:
            return _api(base, token, "api/status")
        except (OSError, urllib.error.URLError) as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"no answer through the tunnel at {base} within {timeout}s: {exc}")
            time.sleep(0.25)


def _saved_outputs(base, token, name):
    """The text/plain outputs of the saved notebook's first cell, or None while it is not saved."""
    try:
        model = _api(base, token, f"api/contents/{name}?content=1")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    cells = model["content"]["cells"]
    if not cells:
        return None
    return [out.get("data", {}).get("text/plain") for out in cells[0].get("outputs", [])]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def workspace():
    """A workspace name of this test's own, removed from HDFS at the end."""
    name = f"browser-test-{secrets.token_hex(4)}"
    yield name
    from skein_jupyter.hdfs import HadoopFS

    # Relative to the HDFS home directory: /user/<you>/skein-jupyter/workspaces/NAME.
    HadoopFS().run("-rm", "-r", "-f", "-skipTrash", f"skein-jupyter/workspaces/{name}", check=False)


def _wait(driver, timeout, what, condition):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)
    except TimeoutException:
        _screenshot(driver, "browser-timeout.png")
        pytest.fail(f"timed out after {timeout}s waiting for {what}")


def _shown_output(driver):
    from selenium.webdriver.common.by import By

    texts = [el.text.strip() for el in driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-OutputArea-output")]
    return "2" in texts


def _new_notebook_runs_and_saves(driver, server, base):
    """Phase 1 in the browser: launcher card -> new notebook -> `1+1` -> `2` -> Ctrl+S."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    began = time.monotonic()
    driver.get(server["tunnel_url"])
    # The launcher card of the environment's python3 kernel (its display name from the server).
    python3 = _api(base, server["token"], "api/kernelspecs")["kernelspecs"]["python3"]["spec"]["display_name"]

    def python3_card(d):
        for card in d.find_elements(By.CSS_SELECTOR, '.jp-LauncherCard[data-category="Notebook"]'):
            if card.find_element(By.CSS_SELECTOR, ".jp-LauncherCard-label").text.strip() == python3:
                return card
        return False

    _wait(driver, 120, f"JupyterLab's launcher with a {python3!r} notebook card", python3_card).click()
    print(f"JupyterLab loaded through the tunnel: {time.monotonic() - began:.1f}s")
    editor = _wait(driver, 60, "the new notebook's first cell", lambda d: d.find_elements(
        By.CSS_SELECTOR, ".jp-Notebook .jp-Cell.jp-CodeCell .cm-content") or False)[0]
    # The status bar says Idle once the kernel is connected; before that Shift+Enter moves on
    # without running the cell, so the run is repeated (with a deadline) while the prompt stays empty.
    _wait(driver, 120, "the new notebook's kernel to be idle", lambda d: any(
        item.text.strip().endswith("| Idle") for item in d.find_elements(By.CSS_SELECTOR, ".jp-StatusBar-TextItem")))
    print(f"kernel ready: {time.monotonic() - began:.1f}s")
    editor.click()
    ActionChains(driver).send_keys("1+1").perform()
    first_prompt = ".jp-Notebook .jp-Cell.jp-CodeCell .jp-InputPrompt"
    deadline = time.monotonic() + 120
    while not _shown_output(driver):
        if time.monotonic() > deadline:
            _screenshot(driver, "browser-timeout.png")
            pytest.fail("timed out after 120s waiting for the output `2` of 1+1")
        prompt = driver.find_elements(By.CSS_SELECTOR, first_prompt)
        if prompt and prompt[0].text.strip() in ("[ ]:", ""):
            driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell.jp-CodeCell .cm-content")[0].click()
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        time.sleep(3)
    print(f"1+1 shown as 2: {time.monotonic() - began:.1f}s")

    ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    # JupyterLab asks to rename an untitled notebook on its first save (renameUntitledFileOnSave).
    name_input = _wait(driver, 30, "the rename-on-first-save dialog", lambda d: d.find_elements(
        By.CSS_SELECTOR, '.jp-Dialog input:not([type="checkbox"])') or False)[0]
    name_input.send_keys(Keys.CONTROL, "a")
    name_input.send_keys(NOTEBOOK)
    driver.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()

    deadline = time.monotonic() + 30
    while (outputs := _saved_outputs(base, server["token"], NOTEBOOK)) != ["2"]:
        if time.monotonic() > deadline:
            _screenshot(driver, "browser-not-saved.png")
            pytest.fail(f"{NOTEBOOK} was not saved with the output 2 within 30s (its outputs: {outputs})")
        time.sleep(0.25)
    _wait(driver, 30, f"the notebook's tab to be named {NOTEBOOK}", lambda d: [
        tab.text.strip() for tab in d.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab.jp-mod-current .lm-TabBar-tabLabel")
    ] == [NOTEBOOK])
    print(f"saved {NOTEBOOK} with its output: {time.monotonic() - began:.1f}s")


def _notebook_is_back(driver, server, base):
    """Phase 2 in the browser: the notebook saved on the first server opens with its `2`."""
    began = time.monotonic()
    driver.get(server["tunnel_url"])  # logs in with the token
    driver.get(f"{base}/lab/tree/{NOTEBOOK}")
    _wait(driver, 120, f"{NOTEBOOK} with the output 2 on the new server", _shown_output)
    print(f"the notebook came back on the new server: {time.monotonic() - began:.1f}s")


def test_browser_through_the_printed_tunnel(uploaded_venv, skein_client, tmp_path, monkeypatch, browser, workspace):
    # The printed command reaches this machine's sshd as this user: the edge node is us.
    with ThrowawaySshd(tmp_path / "sshd") as sshd:
        monkeypatch.setenv("SKEIN_JUPYTER_SSH_USER", sshd.user)
        monkeypatch.setenv("SKEIN_JUPYTER_EDGE_HOST", "127.0.0.1")
        started = []
        try:
            first = _start(uploaded_venv.url, workspace)
            started.append(first["app_id"])
            print(f"tunnel: {first['tunnel_command']}")
            assert first["tunnel_command"].startswith("ssh -N -L ")
            base = first["tunnel_url"].split("/lab?", 1)[0]
            with sshd.tunnel(first["tunnel_command"]) as tunnel:
                _through_tunnel(tunnel, base, first["token"])
                _new_notebook_runs_and_saves(browser, first, base)
                _screenshot(browser, "browser-phase1.png")

            stopped = CliRunner().invoke(cli, ["notebook", "stop", first["app_id"]])
            assert stopped.exit_code == 0, stopped.output
            second = _start(uploaded_venv.url, workspace)
            started.append(second["app_id"])
            base = second["tunnel_url"].split("/lab?", 1)[0]
            with sshd.tunnel(second["tunnel_command"]) as tunnel:
                _through_tunnel(tunnel, base, second["token"])
                outputs = _saved_outputs(base, second["token"], NOTEBOOK)
                assert outputs == ["2"], f"the workspace did not bring {NOTEBOOK} back with its output: {outputs}"
                _notebook_is_back(browser, second, base)
                _screenshot(browser, "browser-phase2.png")
        except BaseException:
            try:
                _screenshot(browser, "browser-failure.png")
            except Exception as exc:  # the browser itself may be what failed
                print(f"no failure screenshot: {exc}")
            print(f"sshd log:\n{sshd.log.read_text()[-3000:]}")
            raise
        finally:
            for app_id in started:
                if str(skein_client.application_report(app_id).state) not in ("FINISHED", "FAILED", "KILLED"):
                    skein_client.kill_application(app_id)
