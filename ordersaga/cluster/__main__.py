"""`python -m ordersaga.cluster up|down|install|uninstall|status|env`: the local Kubernetes.

`make k8s-up` runs `up`, `make k8s-down` runs `down`, `make k8s` runs up, install, tests/k8s and
down. `env` prints the shell lines that point kubectl and helm at the cluster:
`eval "$(.venv/bin/python -m ordersaga.cluster env)"`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ordersaga.cluster import build, images, install
from ordersaga.cluster.images import ImageBuildError
from ordersaga.cluster.node import ClusterError, Node, mounts_under, other_kube_proxy, run_dir_from_env
from ordersaga.cluster.pki import PkiError
from ordersaga.cluster.prereqs import ClusterPrerequisiteError, check_host, ensure_packages
from ordersaga.deploytools import ensure_helm
from ordersaga.stack import processes
from ordersaga.stack.runtime import RuntimeProvisionError, ensure_dapr

FAILURES = (ClusterError, ClusterPrerequisiteError, ImageBuildError, PkiError, RuntimeProvisionError,
            install.InstallError)


def _info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def provision(log=_info) -> tuple[dict, dict, object, float]:
    """Everything built or found: (cluster programs, Dapr binaries by name, helm path, seconds spent)."""
    started = time.monotonic()
    check_host()
    ensure_packages(log)
    programs = build.ensure_all(log)
    dapr = ensure_dapr(log=log)
    helm, _ = ensure_helm(log=log)
    dapr_binaries = {"daprd": dapr.daprd, "placement": dapr.placement, "scheduler": dapr.scheduler}
    control = build.output_dir(build.DAPR_CONTROL_PLANE)
    dapr_binaries.update({name: control / name for name in build.DAPR_CONTROL_PLANE.targets})
    return programs, dapr_binaries, helm, time.monotonic() - started


def all_images(programs: dict, dapr_binaries: dict, run_dir, log=_info) -> list[images.Image]:
    found = images.control_plane_images(programs, dapr_binaries)
    found.append(images.app_image(install.APP_TAG, run_dir, log))
    return found


def cmd_up(args: argparse.Namespace) -> int:
    run_dir = run_dir_from_env()
    node = Node(run_dir, log=_info)
    state = node.state()
    if state and state.processes and all(processes.is_running(r) for r in state.processes.values()):
        _info(f"The cluster in {run_dir} is already up (API {state.api_server}).")
        _print_env(state)
        return 0
    if other_kube_proxy({r.pid for r in state.processes.values()} if state else set()):
        raise ClusterError("another kube-proxy runs on this machine (another local cluster?): two would rewrite "
                           "each other's iptables rules; stop that cluster first")
    programs, dapr_binaries, _, provisioned_s = provision()
    started = time.monotonic()
    wanted = all_images(programs, dapr_binaries, run_dir)
    images_s = time.monotonic() - started
    _info(f"Programs and images ready: {provisioned_s + images_s:.0f}s (builds {provisioned_s:.0f}s, images "
          f"{images_s:.0f}s; a cold run builds everything, a warm one finds it in the cache)")
    if state is not None:
        _info(f"Clearing what is left of an earlier cluster in {run_dir} ...")
        problems = node.down(programs)
        if problems:
            raise ClusterError("could not clear the earlier cluster:\n  " + "\n  ".join(problems))
    state = node.new_state()
    _info(f"Starting the cluster in {run_dir} (node {state.network.node_ip}, pods {state.network.pod_cidr}, "
          f"Services {state.network.service_cidr}) ...")
    try:
        node.start(state, programs, lambda ctr: images.import_images(ctr, wanted, _info), images.PAUSE_IMAGE,
                   str(programs["kubectl"]))
    except BaseException:
        _info("Stopping what was started ...")
        node.down(programs)
        raise
    _info(f"Cluster ready in {state.ready_seconds:.0f}s: node {state.network.node_ip}, API {state.api_server}")
    _print_env(node.state())
    return 0


def _print_env(state) -> None:
    _info(f"  kubeconfig: {state.kubeconfig}\n  eval \"$(.venv/bin/python -m ordersaga.cluster env)\" puts kubectl "
          "and helm on the PATH and points them at it.")


def cmd_down(args: argparse.Namespace) -> int:
    run_dir = run_dir_from_env()
    node = Node(run_dir, log=_info)
    if node.state() is None:
        _info(f"No cluster in {run_dir}.")
        return 0
    programs = {}
    for module in build.MODULES:
        if build.is_built(module):
            programs.update({n: build.output_dir(module) / n for n in module.targets})
    _info(f"Stopping the cluster in {run_dir} ...")
    problems = node.down(programs)
    if problems:
        _info("Left behind (remove by hand):\n  " + "\n  ".join(problems))
        return 1
    left = mounts_under(run_dir)
    _info("Stopped: no process, mount, network device or cgroup of the cluster is left."
          if not left else f"Stopped, but still mounted: {left}")
    return 0 if not left else 1


def cmd_install(args: argparse.Namespace) -> int:
    run_dir = run_dir_from_env()
    node = Node(run_dir, log=_info)
    state = node.state()
    if state is None or not state.processes:
        raise ClusterError(f"no cluster runs in {run_dir}: `make k8s-up` first")
    programs, dapr_binaries, helm, _ = provision()
    extra = tuple(arg for path in args.values for arg in ("--values", path))
    install.Installer(node, state, programs, helm, log=_info).install_all(extra)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    run_dir = run_dir_from_env()
    node = Node(run_dir, log=_info)
    state = node.state()
    if state is None or not state.processes:
        raise ClusterError(f"no cluster runs in {run_dir}")
    programs, _, helm, _ = provision()
    install.Installer(node, state, programs, helm, log=_info).uninstall_ordersaga()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    run_dir = run_dir_from_env()
    state = Node(run_dir).state()
    if state is None:
        print(f"No cluster in {run_dir}.")
        return 1
    procs = {n: {"pid": r.pid, "running": processes.is_running(r), "log": r.log} for n, r in state.processes.items()}
    status = {"run_dir": str(run_dir), "api_server": state.api_server, "kubeconfig": str(state.kubeconfig),
              "node_ip": state.network.node_ip, "pod_cidr": state.network.pod_cidr,
              "service_cidr": state.network.service_cidr, "ready_seconds": state.ready_seconds,
              "running": bool(procs) and all(p["running"] for p in procs.values()), "processes": procs}
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"Cluster in {run_dir}: API {state.api_server}, node {state.network.node_ip}")
        for name, proc in procs.items():
            print(f"  {name:<26} {'running' if proc['running'] else 'STOPPED':<8} pid {proc['pid']}")
    return 0 if status["running"] else 1


def cmd_env(args: argparse.Namespace) -> int:
    state = Node(run_dir_from_env()).state()
    if state is None:
        print(f"echo 'no cluster in {run_dir_from_env()}' >&2", flush=True)
        return 1
    kubectl_dir = build.output_dir(build.KUBERNETES)
    helm, _ = ensure_helm(log=_info)
    print(f"export KUBECONFIG={state.kubeconfig}")
    print(f"export PATH={kubectl_dir}:{helm.parent}:$PATH")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ordersaga.cluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build what is missing and start the cluster").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the cluster and undo its changes to the host").set_defaults(func=cmd_down)
    installing = sub.add_parser("install", help="Dapr, PostgreSQL and Kafka, then ordersaga, as the README says")
    installing.add_argument("--values", action="append", default=[], metavar="FILE",
                            help="also this values file for the ordersaga chart (e.g. tests/k8s/values.yaml)")
    installing.set_defaults(func=cmd_install)
    sub.add_parser("uninstall", help="helm uninstall ordersaga").set_defaults(func=cmd_uninstall)
    status = sub.add_parser("status", help="the cluster's processes")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("env", help="shell lines for kubectl and helm").set_defaults(func=cmd_env)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FAILURES as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
