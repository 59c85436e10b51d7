"""Requests the cluster cannot satisfy are refused before submitting, against the real sandbox."""
import pytest

from skein_jupyter.config import load_recipe
from skein_jupyter.exceptions import UsageError
from skein_jupyter.spec import check_cluster_limits

pytestmark = pytest.mark.yarn


def _recipe(**flags):
    recipe, _ = load_recipe(kind="notebook", flags={"environment": "analytics", **flags}, environ={})
    return recipe


def test_memory_above_the_cluster_maximum_names_the_maximum(sandbox, skein_client):
    maximum = sandbox.config.nodemanager_memory_mb
    with pytest.raises(UsageError) as info:
        check_cluster_limits(_recipe(**{"resources.memory": "100 GiB"}), skein_client)
    assert str(info.value) == (f"resources.memory: 102400 MiB is above the cluster maximum of {maximum} MiB "
                               f"per container (the maximum allocation of queue default); "
                               f"ask for at most {maximum} MiB")
    assert info.value.exit_code == 2


def test_vcores_above_the_cluster_maximum(sandbox, skein_client):
    maximum = sandbox.config.nodemanager_vcores
    with pytest.raises(UsageError, match=rf"resources.vcores: 64 is above the cluster maximum of {maximum} per container"):
        check_cluster_limits(_recipe(**{"resources.vcores": 64}), skein_client)


def test_gpus_above_the_cluster_maximum(sandbox, skein_client):
    # A cluster without GPUs: tests/test_gpus.py (the session sandbox declares some).
    gpus = sandbox.config.gpus
    with pytest.raises(UsageError, match=rf"resources.gpus: {gpus + 1} is above the cluster maximum of {gpus} "):
        check_cluster_limits(_recipe(**{"resources.gpus": gpus + 1}), skein_client)


def test_the_limit_is_the_schedulers_maximum_allocation(sandbox):
    from skein_jupyter.scheduler import maximum_allocation, rm_web_url

    assert rm_web_url() == sandbox.config.web_url("resourcemanager.http").rstrip("/")
    allocation = maximum_allocation("default")
    assert (allocation.memory_mb, allocation.vcores, allocation.gpus) == (sandbox.config.nodemanager_memory_mb,
                                                                      sandbox.config.nodemanager_vcores,
                                                                      sandbox.config.gpus or None)


def test_unknown_queue(sandbox, skein_client):
    with pytest.raises(UsageError, match=r"queue: 'nosuchqueue' is not a queue of this cluster"):
        check_cluster_limits(_recipe(queue="nosuchqueue"), skein_client)


def test_a_request_that_fits_passes(sandbox, skein_client):
    check_cluster_limits(_recipe(**{"resources.memory": "1 GiB", "resources.vcores": 2}), skein_client)
