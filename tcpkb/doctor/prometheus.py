"""`tcpkb doctor --prometheus`: the scans and findings as Prometheus metrics.

The text follows node_exporter's textfile-collector conventions: every name starts with
`tcpkb_`, every family has HELP and TYPE, no sample carries a timestamp (the collector
refuses them), and `--output FILE` replaces FILE atomically (written beside it, then
renamed over it), so the collector never reads half a file. The series:

    tcpkb_tcp_sockets{netns, state, port}            gauge: sockets per TCP state per local port
    tcpkb_tcp_accept_queue{netns, address, port}     gauge: connections waiting for accept()
    tcpkb_ephemeral_ports{netns}                     gauge: the size of ip_local_port_range
    tcpkb_kernel_counter_total{netns, entry}         counter: the trouble counters, by entry id
    tcpkb_findings{netns, finding, severity}         gauge: doctor's findings of each kind

A local port keeps its own series when something listens on it; the sockets on every other
local port (the ephemeral ports of outgoing connections, one series each otherwise) are
summed under port="other", which keeps the number of series bounded by the listeners.
prometheus_client is imported here only, never on the lookup path.
"""

from __future__ import annotations

from collections import Counter


def registry(scans: list[tuple[str, dict, list[dict]]]):
    """A prometheus_client registry holding [(netns label, scan, findings)]."""
    from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily

    class Doctor:
        def collect(self):
            sockets = GaugeMetricFamily(
                "tcpkb_tcp_sockets", "TCP sockets in each state on each local port (port=other: "
                "every local port nothing listens on).", labels=["netns", "state", "port"])
            queues = GaugeMetricFamily(
                "tcpkb_tcp_accept_queue", "Connections waiting in a listener's accept queue.",
                labels=["netns", "address", "port"])
            ports = GaugeMetricFamily(
                "tcpkb_ephemeral_ports", "Ports in net.ipv4.ip_local_port_range.", labels=["netns"])
            counters = CounterMetricFamily(
                "tcpkb_kernel_counter", "Kernel MIB counters that point at TCP trouble, since boot "
                "or since the namespace was made; entry is the tcpkb entry id.",
                labels=["netns", "entry"])
            findings = GaugeMetricFamily(
                "tcpkb_findings", "tcpkb doctor findings of each kind and severity.",
                labels=["netns", "finding", "severity"])
            for netns, scan_, found in scans:
                _sockets(sockets, netns, scan_)
                for x in scan_["listeners"]:
                    queues.add_metric([netns, x["address"], str(x["port"])], x["accept_queue"])
                if pr := scan_.get("port_range"):
                    ports.add_metric([netns], pr["size"])
                for name, value in scan_["counters"].items():
                    counters.add_metric([netns, f"counter:{name}"], value)
                for (finding, severity), n in sorted(Counter(
                        (f["id"], f["severity"]) for f in found).items()):
                    findings.add_metric([netns, finding, severity], n)
            yield from (sockets, queues, ports, counters, findings)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Doctor())
    return reg


def _sockets(family, netns: str, scan_: dict) -> None:
    listening = {x["port"] for x in scan_["listeners"]}
    counts: Counter = Counter()
    for x in scan_["listeners"]:
        counts[("LISTEN", str(x["port"]))] += 1
    for p in scan_["ports"]:
        port = str(p["port"]) if p["port"] in listening else "other"
        for sid, n in p["states"].items():
            counts[(sid.split(":", 1)[-1], port)] += n
    for (state, port), n in sorted(counts.items()):
        family.add_metric([netns, state, port], n)


def text(scans: list[tuple[str, dict, list[dict]]]) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry(scans)).decode()


def write(path: str, scans: list[tuple[str, dict, list[dict]]]) -> None:
    """Replace `path` atomically (a temporary file beside it, renamed over it)."""
    from prometheus_client import write_to_textfile

    write_to_textfile(path, registry(scans))
