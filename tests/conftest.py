"""Shared fixtures: a real S3 endpoint on 127.0.0.1 (moto's server) and fixture zips."""

from __future__ import annotations

import os
import socket

import boto3
import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for test servers and Ray heads)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 for the whole session; yields its ``http://`` URL.

    The AWS environment variables raytag reads are pointed at it for the session, so that
    ``raytag.io.storage`` and any Ray worker started afterwards reach the same endpoint.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": url,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh, empty bucket on the moto endpoint; yields its name."""
    name = "raytag-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield name


@pytest.fixture(scope="session")
def ray_local(s3_endpoint):
    """One local Ray for the session: 2 CPUs, a private temp dir, no dashboard.

    It starts after the S3 endpoint so that its workers inherit the AWS variables, as the
    nodes of a real cluster carry them (a worker's environment is fixed when Ray starts:
    variables the driver sets later never reach it). Shut down by its handle at the end
    (never ``ray stop``: that kills every Ray here).
    """
    import shutil
    import tempfile

    ray = pytest.importorskip("ray")
    # Short path: Ray's Unix socket paths must stay under ~107 characters.
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    ray.init(num_cpus=2, _temp_dir=temp_dir, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


#: Fixtures that start Ray: a test using one is marked ``ray`` (``pytest -m "not ray"``
#: is the quick subset without any Ray start).
RAY_FIXTURES = {"ray_local", "ray_head", "fake_cluster"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)
