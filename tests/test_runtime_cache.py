"""The runtime zips' private cache on the cluster (runtime_zip.on_cluster): put once, never replaced."""
import concurrent.futures
import uuid

import pytest

from skein_jupyter.hdfs import HadoopFS
from skein_jupyter.identity import hadoop_user
from skein_jupyter.runtime_zip import cluster_dir, on_cluster


@pytest.mark.yarn
def test_a_zip_is_put_once_privately_even_by_concurrent_launches(sandbox, tmp_path):
    # A zip of its own (unique content, so a unique name): other tests' launches use the real ones.
    local = tmp_path / f"skein_jupyter_runtime-{uuid.uuid4().hex[:16]}.zip"
    local.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    fs, user = HadoopFS(), hadoop_user()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            urls = set(pool.map(lambda _: on_cluster(local, fs, user), range(2)))
        assert urls == {f"{cluster_dir(user)}/{local.name}"}
        url = urls.pop()
        before = fs.stat(url, "%Y %b")
        assert fs.modes(url) == {url: 0o600} and before.endswith(f" {local.stat().st_size}")
        assert fs.modes(cluster_dir(user)) == {cluster_dir(user): 0o700}  # the cache directory is private too
        assert on_cluster(local, fs, user) == url and fs.stat(url, "%Y %b") == before  # not put again
        listing = fs.run("-ls", "-C", cluster_dir(user)).stdout.split()
        assert not [path for path in listing if local.name in path and path.endswith(".partial")]
    finally:
        fs.rm(f"{cluster_dir(user)}/{local.name}")
