"""Azurite (Microsoft's Storage emulator, from npm) for the ledger, run history and queues."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "devstoreaccount1"
# The emulator's well-known development key (documented by Microsoft; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("Azurite did not start listening in time")


class Azurite:
    """Table, Queue and Blob services on free loopback ports, in memory."""

    def __init__(self):
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run ./dev test (it runs `npm ci`)")
        self.ports = {name: _free_port() for name in ("blob", "queue", "table")}
        self._workdir = tempfile.mkdtemp(prefix="azurite-")
        self._process = subprocess.Popen(
            [str(binary), "--silent", "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck",
             "--blobHost", "127.0.0.1", "--blobPort", str(self.ports["blob"]),
             "--queueHost", "127.0.0.1", "--queuePort", str(self.ports["queue"]),
             "--tableHost", "127.0.0.1", "--tablePort", str(self.ports["table"])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self._workdir)
        for port in self.ports.values():
            _wait(port, self._process)
        self._probe()

    def _probe(self, timeout: float = 20.0) -> None:
        """A listening port is not a ready service: wait until a table round trip works."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import TableServiceClient

        service = TableServiceClient.from_connection_string(self.connection_string)
        deadline = time.monotonic() + timeout
        while True:
            try:
                service.create_table_if_not_exists("probe")
                service.delete_table("probe")
                return
            except AzureError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1:{}/" + ACCOUNT
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint={base.format(self.ports['blob'])};"
                f"QueueEndpoint={base.format(self.ports['queue'])};"
                f"TableEndpoint={base.format(self.ports['table'])};")

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)
