"""jupyter-scheduler's UI in the JupyterLab that `notebook start --scheduler` runs on YARN.

Headless Chromium, through the SSH tunnel `notebook start` printed (as tests/test_browser.py),
creates a notebook job from the file browser's context menu ("Create Job"), with a parameter,
watches the Notebook Jobs panel until the job is "Completed", downloads its output files from
the panel and reads the HTML. The job ran on YARN: its id names a YARN application tagged for
JupyterLab jobs, submitted by the server's container with its own Skein driver. Screenshots are
kept under ``$SKEIN_JUPYTER_TEST_ARTIFACTS`` (default ``test-artifacts/``).
"""
import json
import secrets
import time
import urllib.request

import pytest
from click.testing import CliRunner

from skein_jupyter.cli import cli
from test_browser import _api, _screenshot, _through_tunnel, _wait, browser, workspace  # noqa: F401 (fixtures)
from throwaway_sshd import ThrowawaySshd

NOTEBOOK = "scheduled-answer.ipynb"
FINAL = ("FINISHED", "FAILED", "KILLED")


def _notebook():
    """A notebook with a ``parameters`` cell; its output says which value the job passed."""
    cells = [("answer = 0", ["parameters"]), ("print(f'answer={answer}')", [])]
    return {"cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {"tags": tags}, "execution_count": None,
                       "outputs": [], "source": source} for i, (source, tags) in enumerate(cells)],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _put(base, token, path, model):
    request = urllib.request.Request(f"{base}/api/contents/{path}", data=json.dumps(model).encode(), method="PUT",
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _read(base, token, path):
    request = urllib.request.Request(f"{base}/files/{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read().decode()


#: Wraps the page's fetch, before JupyterLab keeps a reference to it: what the server answered to each
#: POST to scheduler/jobs (the UI's Create).
_RECORD_POSTS = """
window.__schedulerPosts = window.__schedulerPosts || [];
if (!window.__fetchRecorded) {
    window.__fetchRecorded = true;
    const fetch0 = window.fetch;
    window.fetch = async function (resource, init) {
        const url = String(resource && resource.url || resource);
        const method = (init && init.method) || (resource && resource.method) || "GET";
        if (method.toUpperCase() !== "POST" || !/scheduler\\/jobs(\\?|$)/.test(url)) {
            return fetch0.apply(this, arguments);
        }
        const entry = {url: url, sent: Date.now()};
        entry.body = init && init.body || (resource && resource.clone ? await resource.clone().text() : null);
        window.__schedulerPosts.push(entry);
        try {
            const response = await fetch0.apply(this, arguments);
            entry.status = response.status;
            entry.response = await response.clone().text();
            entry.answered = Date.now();
            return response;
        } catch (exc) {
            entry.error = String(exc);
            throw exc;
        }
    };
}
"""


def _posts(driver):
    """The POSTs to scheduler/jobs the page sent (body, status, answer, seconds), as text."""
    posts = driver.execute_script("return window.__schedulerPosts || []")
    lines = []
    for post in posts:
        took = f"{(post['answered'] - post['sent']) / 1000:.1f}s" if post.get("answered") else "no answer yet"
        lines.append(f"POST {post.get('url')} {post.get('body')} -> {post.get('status', post.get('error'))} "
                     f"({took}): {post.get('response')}")
    return "\n".join(lines) or "no POST to scheduler/jobs"


def _page_messages(driver):
    """What the page tells the user: the form's error, toasts, and the notification center's list."""
    from selenium.webdriver.common.by import By

    shown = [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, "[role=alert], .Toastify__toast")]
    bell = driver.find_elements(By.CSS_SELECTOR, ".jp-Notification-Status")
    if bell:
        _click(driver, bell[0])  # opens the notification center
        time.sleep(1)
        shown += [e.text.strip() for e in driver.find_elements(By.CSS_SELECTOR, ".jp-Notification-Center")]
    return "\n".join(f"- {text}" for text in shown if text) or "none"


def _button(driver, text):
    from selenium.webdriver.common.by import By

    found = [b for b in driver.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == text]
    return found[0] if found else False


def _click(driver, element):
    """Click ``element``; a "Server Connection Error" dialog over it is said, closed, and the click tried again."""
    from selenium.common.exceptions import ElementClickInterceptedException

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    try:
        element.click()
    except ElementClickInterceptedException:
        if not _close_connection_error(driver):
            raise
        element.click()


def _close_connection_error(driver):
    """JupyterLab's dialog when a request to the server failed (it keeps trying): printed, then closed."""
    from selenium.webdriver.common.by import By

    for dialog in driver.find_elements(By.CSS_SELECTOR, "dialog"):
        if "Server Connection Error" in dialog.text:
            print(f"{time.strftime('%H:%M:%S')} JupyterLab said: {' '.join(dialog.text.split())}")
            _screenshot(driver, "jupyter-scheduler-connection-error.png")
            next(b for b in dialog.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Close").click()
            return True
    return False


def _create_job(driver, server, job_name):
    """File browser -> context menu "Create Job" -> the form (name, parameter answer=42) -> Create."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    began = time.monotonic()
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_POSTS})
    driver.get(server["tunnel_url"])
    item = _wait(driver, 120, f"{NOTEBOOK} in the file browser", lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, ".jp-DirListing-item") if NOTEBOOK in e.text), False))
    print(f"JupyterLab loaded through the tunnel: {time.monotonic() - began:.1f}s")
    for close in driver.find_elements(By.CSS_SELECTOR, ".jp-Notification-Toast-Close"):
        close.click()  # "get notified about Jupyter news?" would cover the form's buttons
    ActionChains(driver).context_click(item).perform()
    _wait(driver, 30, 'the context menu\'s "Create Job"', lambda d: next(
        (m for m in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-item") if m.text.strip() == "Create Job"), False)).click()
    _wait(driver, 60, "the Create Job form", lambda d: d.find_elements(By.ID, "jp-create-job-jobName") or False)
    # The form lists the environments (from HDFS) before it shows their output formats. The name is typed
    # after that: when the environments arrive, jupyter-scheduler's form sets the environment on the model
    # it had when it opened, which puts back the name it proposed (the notebook's) over one typed meanwhile.
    html = _wait(driver, 240, "the form's environments and output formats", lambda d: d.find_elements(
        By.ID, "jp-create-job-outputFormat-html") or False)[0]
    name = driver.find_element(By.ID, "jp-create-job-jobName")
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys(job_name)
    if not html.is_selected():
        _click(driver, html)
    _click(driver, driver.find_element(By.CSS_SELECTOR, "button[title='Add new parameter']"))
    driver.find_element(By.NAME, "parameter-0-name").send_keys("answer")
    driver.find_element(By.NAME, "parameter-0-value").send_keys("42", Keys.TAB)  # validated on blur
    _screenshot(driver, "jupyter-scheduler-form.png")
    typed = driver.find_element(By.ID, "jp-create-job-jobName").get_attribute("value")
    assert typed == job_name, f"the form's job name is {typed!r}, not the {job_name!r} typed into it"
    create = _wait(driver, 60, "the Create button to be enabled (the environments are listed)",
                   lambda d: (b := _button(d, "Create")) and b.is_enabled() and b)
    _click(driver, create)
    print(f"job created from the UI: {time.monotonic() - began:.1f}s")


def _row(driver, job_name):
    from selenium.webdriver.common.by import By

    def name(row):  # its first cell ("Job name"); the row's text may put the next cell on the same line
        cells = row.find_elements(By.CSS_SELECTOR, "td, th")
        return cells[0].text.strip() if cells else None

    return next((r for r in driver.find_elements(By.CSS_SELECTOR, ".jp-notebook-jobs-panel tbody tr")
                 if name(r) == job_name), None)


def _watch_until_completed(driver, job_name, timeout=600):
    """The Notebook Jobs panel, reloaded every few seconds, until the job's row says Completed."""
    began = time.monotonic()
    deadline = began + timeout
    seen = None
    while True:
        row = _row(driver, job_name)
        text = row.text.replace("\n", " | ") if row is not None else None
        if text != seen:
            print(f"{time.monotonic() - began:6.1f}s panel: {text}")
            seen = text
        if text and "Completed" in text:
            return
        if text and "Failed" in text:
            _screenshot(driver, "jupyter-scheduler-failed.png")
            pytest.fail(f"the job failed: {text}")
        if time.monotonic() > deadline:
            _screenshot(driver, "jupyter-scheduler-timeout.png")
            pytest.fail(f"the job was not Completed within {timeout}s (panel: {text})")
        time.sleep(3)
        reload = _button(driver, "Reload")
        if reload:
            _click(driver, reload)


def _download_html(driver, server, base, job_name):
    """Download the job's output files from the panel; the HTML file's text, read through the server."""
    from selenium.webdriver.common.by import By

    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

    began = time.monotonic()

    def download(d):
        """Click the row's download button, as a user does again after closing a "Server Connection Error"."""
        row = _row(d, job_name)
        buttons = row.find_elements(By.CSS_SELECTOR, f"button[title='Download output files for \"{job_name}\"']") \
            if row is not None else []
        try:
            if buttons:
                _click(d, buttons[0])
                return True
        except (ElementClickInterceptedException, StaleElementReferenceException):
            _close_connection_error(d)
        time.sleep(2)
        return False

    _wait(driver, 240, "the row's download button to take a click", download)

    def html_link(d):
        reload = _button(d, "Reload")
        if reload:
            _click(d, reload)
        time.sleep(2)
        row = _row(d, job_name)
        links = row.find_elements(By.CSS_SELECTOR, "a[href$='.html']") if row is not None else []
        return links[0].get_attribute("href") if links else False

    href = _wait(driver, 180, "the HTML output's link in the panel", html_link)
    path = href.split("/lab/tree/", 1)[1]
    print(f"output downloaded to {path}: {time.monotonic() - began:.1f}s")
    return _read(base, server["token"], path)


@pytest.mark.yarn
@pytest.mark.timeout(1200)  # a server, a run and a browser on a loaded machine (the default is 900 s)
def test_create_a_job_in_the_yarn_jupyterlab(published, skein_client, tmp_path, monkeypatch, browser,  # noqa: F811
                                             workspace):  # noqa: F811 (fixtures of test_browser.py)
    job_name = f"ui-job-{secrets.token_hex(3)}"
    started = []
    with ThrowawaySshd(tmp_path / "sshd") as sshd:
        monkeypatch.setenv("SKEIN_JUPYTER_SSH_USER", sshd.user)
        monkeypatch.setenv("SKEIN_JUPYTER_EDGE_HOST", "127.0.0.1")
        try:
            began = time.monotonic()
            result = CliRunner().invoke(cli, ["notebook", "start", "--env", "analytics", "--scheduler", "--memory",
                                              "2GiB", "--workspace", workspace, "--timeout", "600", "--json", "--quiet"])
            assert result.exit_code == 0, result.output
            server = json.loads(result.output)
            started.append(server["app_id"])
            print(f"notebook start --scheduler: {time.monotonic() - began:.1f}s")
            base = server["tunnel_url"].split("/lab?", 1)[0]
            with sshd.tunnel(server["tunnel_command"]) as tunnel:
                _through_tunnel(tunnel, base, server["token"])
                _put(base, server["token"], NOTEBOOK, {"type": "notebook", "format": "json", "content": _notebook()})
                _create_job(browser, server, job_name)
                # Create returns once the server has submitted the run: its first submission starts the
                # server's own Skein driver and uploads the application's files (tens of seconds)
                listed_by = time.monotonic() + 300
                listed, answers = [], []
                while True:
                    asked = time.monotonic()
                    try:  # while the server submits the run (a listing never waits for a submission)
                        listed = _api(base, server["token"], "scheduler/jobs", timeout=120)["jobs"]
                        answers.append(time.monotonic() - asked)
                    except TimeoutError:
                        answers.append(None)
                    jobs = [job for job in listed if job["name"] == job_name]
                    refused = browser.execute_script(
                        "return (window.__schedulerPosts || []).some(p => p.error || p.status >= 400)")
                    if jobs or refused or time.monotonic() > listed_by:
                        break
                    time.sleep(3)
                create = _posts(browser)
                print(f"the UI's Create: {create}")
                print("listings while the server submitted (s): "
                      + ", ".join("timed out" if a is None else f"{a:.1f}" for a in answers))
                assert len(jobs) == 1, (f"the server lists {len(jobs)} jobs named {job_name} (of {[j['name'] for j in listed]}) "
                                        f"after Create ({create})")
                app_id = jobs[0]["job_id"].removeprefix("yarn-")
                started.append(app_id)
                report = skein_client.application_report(app_id)  # a YARN application of ours: KeyError if not
                assert "skein-jupyter-jupyterlab" in set(report.tags), report.tags
                _watch_until_completed(browser, job_name)
                html = _download_html(browser, server, base, job_name)
                _screenshot(browser, "jupyter-scheduler-completed.png")
                assert "answer=42" in html, "the HTML output does not show the parameter the UI passed"
                report = skein_client.application_report(app_id)
                assert (str(report.state), str(report.final_status)) == ("FINISHED", "SUCCEEDED")
        except BaseException:
            _explain_failure(browser, started, sshd)
            raise
        finally:
            for app_id in started:
                try:
                    if str(skein_client.application_report(app_id).state) not in FINAL:
                        skein_client.kill_application(app_id)
                except Exception as exc:  # keep cleaning up the others
                    print(f"could not end {app_id}: {exc}")


def _explain_failure(driver, started, sshd):
    """Print what explains a failure: the page's POSTs and messages, the tunnel's and sshd's logs, the server's
    log, the runs' logs."""
    from skein_jupyter.applications import application_logs, log_sections

    for name in ("ssh.log", "sshd.log"):
        path = sshd.directory / name
        if path.exists():
            print(f"----- {name} (the tunnel) -----\n{path.read_text()[-4000:]}")
    try:
        _screenshot(driver, "jupyter-scheduler-failure.png")
        print(f"----- the UI's POSTs to scheduler/jobs -----\n{_posts(driver)}")
        print(f"----- what the page shows -----\n{_page_messages(driver)}")
    except Exception as exc:  # the browser itself may be what failed
        print(f"----- no screenshot or page messages: {exc}")
    for n, app_id in enumerate(started):  # ended in `finally`; here only their logs
        try:
            logs = application_logs(app_id, timeout=60)
        except Exception as exc:
            print(f"----- no logs of {app_id}: {exc}")
            continue
        kinds = ("jupyter.log", "skein-driver.log") if n == 0 else ("papermill.log", "application.master.log")
        shown = False
        for kind in kinds:
            for section in log_sections(logs, kind):
                print(f"----- {kind} of {app_id} -----\n{section[-12000:]}")
                shown = True
        if not shown:
            print(f"----- logs of {app_id} -----\n{logs[-6000:]}")


# ----- without a cluster: what `--scheduler` puts into the job and the spec


def _spec(tmp_path, **raw):
    from skein_jupyter.recipe import build
    from skein_jupyter.spec import SpecContext, build_spec

    recipe = build({"kind": "notebook", "environment": "analytics", **raw})
    spec = build_spec(recipe, SpecContext.example(recipe), job_path=str(tmp_path / "job.json"))
    return json.loads((tmp_path / "job.json").read_text()), spec.services["jupyter"].files


def test_scheduler_ships_the_package_and_the_keytab_only_when_asked(tmp_path):
    job, files = _spec(tmp_path)
    assert job["notebook"]["scheduler"] is None and "skein_jupyter_lib" not in files

    job, files = _spec(tmp_path, notebook={"scheduler": True})
    assert job["notebook"]["scheduler"] == {"library": "skein_jupyter_lib", "keytab": None, "principal": None}
    assert str(files["skein_jupyter_lib"].type) == "ARCHIVE"  # unpacked: the package runs from real files
    assert "jupyter-scheduler.keytab" not in files

    keytab = tmp_path / "alice.keytab"
    keytab.write_bytes(b"not a real keytab")
    job, files = _spec(tmp_path, notebook={"scheduler": True},
                       kerberos={"keytab": str(keytab), "principal": "alice@EXAMPLE.COM"})
    assert job["notebook"]["scheduler"]["keytab"] == "jupyter-scheduler.keytab"
    assert job["notebook"]["scheduler"]["principal"] == "alice@EXAMPLE.COM"
    shipped = files["jupyter-scheduler.keytab"]
    assert (shipped.source, str(shipped.visibility)) == (f"file://{keytab}", "APPLICATION")


def test_the_container_refuses_a_scheduler_job_it_cannot_trust():
    from skein_jupyter.runtime.job import JobError, from_json

    def job(scheduler):
        return json.dumps({"kind": "notebook", "name": "n", "user": "alice", "format": 1,
                           "notebook": {"frontend": "lab", "scheduler": scheduler}})

    assert from_json(job({"library": "skein_jupyter_lib"})).notebook.scheduler.library == "skein_jupyter_lib"
    with pytest.raises(JobError, match="notebook.scheduler.keytab: not a file name"):
        from_json(job({"keytab": "/home/alice/.keytab", "principal": "alice@EXAMPLE.COM"}))
    with pytest.raises(JobError, match="a keytab needs a principal"):
        from_json(job({"keytab": "k.keytab"}))


def test_an_environment_without_jupyter_scheduler_is_refused_before_submitting():
    from skein_jupyter.exceptions import UsageError
    from skein_jupyter.launch import check_environment_packages
    from skein_jupyter.recipe import build

    recipe = build({"kind": "notebook", "environment": "analytics", "notebook": {"scheduler": True}})
    packages = {"skein": "0.8.2", "jupyter-server": "2.14", "ipykernel": "6.29", "jupyterlab": "4.2"}
    with pytest.raises(UsageError, match="lacks jupyter-scheduler"):
        check_environment_packages(recipe, {"name": "analytics", "packages": packages})
    check_environment_packages(recipe, {"name": "analytics", "packages": {**packages, "jupyter-scheduler": "2.12.1"}})
