"""``sdnc bench ...``: the load benchmarks (controller/bench/), each printing its numbers."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from controller.cli_style import command_group
from controller.settings import Settings

bench_app = command_group(help="Load benchmarks.")

# The options every benchmark against a controller takes.
ControllerUrl = Annotated[
    str | None,
    typer.Option(
        "--controller",
        metavar="URL",
        help="Base URL of a running controller on the configured database; default: start one.",
    ),
]
ControllerPid = Annotated[
    int | None,
    typer.Option(
        "--controller-pid",
        metavar="PID",
        help="Process id of the --controller on this machine, to report its CPU time and "
        "memory (a controller the benchmark starts is measured anyway).",
    ),
]


@bench_app.command("api")
def bench_api(
    controller: ControllerUrl = None,
    clients: Annotated[int, typer.Option(min=1, metavar="N", help="Concurrent clients.")] = 32,
    requests: Annotated[int, typer.Option(min=1, metavar="N", help="Requests per phase.")] = 5000,
    list_size: Annotated[
        int, typer.Option(min=1, metavar="N", help="logicalNetworks created for the list phase.")
    ] = 50,
    keep: Annotated[bool, typer.Option(help="Keep the resources the benchmark created.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    phase: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PHASE",
            help="Run only this phase (repeatable): create, get, list, update, nic-create, "
            "nic-child-add. Default: all.",
        ),
    ] = None,
    configs_per_nic: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="ipConfigurations nic-child-add adds to each container-host NIC.",
        ),
    ] = 64,
    controller_pid: ControllerPid = None,
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Controllers to start on the configured database; the clients take turns "
            "among them (without --controller).",
        ),
    ] = 1,
) -> None:
    """Measure throughput and latency of PUT, GET and GET-all, and of NIC creation with MAC
    and IP allocation, under concurrent clients."""
    from controller.bench import api as bench
    from controller.bench.common import BenchError

    try:
        options = bench.Options(
            clients=clients,
            requests=requests,
            list_size=list_size,
            keep=keep,
            phases=tuple(phase) if phase else bench.PHASES,
            configs_per_nic=configs_per_nic,
            controller_pid=controller_pid,
            database_url=Settings().resolved_database_url(),
            replicas=replicas,
        )
        report = bench.run(controller, options, log=lambda line: typer.echo(line, err=True))
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if json_output else bench.format_report(report))


@bench_app.command("big")
def bench_big(
    controller: ControllerUrl = None,
    nics: Annotated[int, typer.Option(min=1, metavar="N", help="NICs in the collection.")] = 20000,
    configs: Annotated[
        int, typer.Option(min=1, metavar="N", help="ipConfigurations of the big NIC.")
    ] = 1000,
    rules: Annotated[
        int, typer.Option(min=2, metavar="N", help="aclRules of the big ACL.")
    ] = 10000,
    nat_rules: Annotated[
        int, typer.Option(min=1, metavar="N", help="inboundNatRules of the big loadBalancer.")
    ] = 1000,
    concurrency: Annotated[
        int, typer.Option(min=1, metavar="N", help="Concurrent GETs of the collection.")
    ] = 16,
    keep: Annotated[
        bool, typer.Option(help="Keep what was set up; the next run reuses it.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    controller_pid: ControllerPid = None,
) -> None:
    """Measure a big collection (time, memory), a NIC of many ipConfigurations, a child added
    to a big ACL, to that NIC and to a big load balancer, and a discovery GET's latency
    meanwhile."""
    from controller.bench import big
    from controller.bench.common import BenchError

    try:
        options = big.Options(
            nics=nics,
            configs=configs,
            rules=rules,
            nat_rules=nat_rules,
            concurrency=concurrency,
            keep=keep,
            controller_pid=controller_pid,
            database_url=Settings().resolved_database_url(),
        )
        report = big.run(controller, options, log=lambda line: typer.echo(line, err=True))
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if json_output else big.format_report(report))


@bench_app.command("convergence")
def bench_convergence(
    controller: ControllerUrl = None,
    agents: Annotated[
        int, typer.Option(min=1, metavar="N", help="Servers, each with a simulated agent.")
    ] = 100,
    endpoints: Annotated[
        int, typer.Option(min=1, metavar="N", help="Endpoints spread over them.")
    ] = 10_000,
    changes: Annotated[
        int, typer.Option(min=1, metavar="N", help="Timed changes of each kind.")
    ] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    scenario: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="default: ACL and endpoint changes; lb: DIP changes and failed probes of "
            "load balancers (uses --vips, not --endpoints).",
        ),
    ] = "default",
    vips: Annotated[
        int, typer.Option(min=1, metavar="N", help="lb scenario: load balancers of 10 DIPs each.")
    ] = 100,
    controller_pid: ControllerPid = None,
) -> None:
    """Time a northbound change until every affected simulated agent has acknowledged it."""
    from controller.bench import convergence, lb
    from controller.bench.common import BenchError

    settings = Settings()
    log = lambda line: typer.echo(line, err=True)  # noqa: E731
    try:
        if scenario == "lb":
            lb_options = lb.Options(agents=agents, vips=vips, changes=changes)
            report = lb.run(controller, settings.resolved_database_url(), lb_options, log=log)
        elif scenario == "default":
            options = convergence.Options(
                agents=agents, endpoints=endpoints, changes=changes, controller_pid=controller_pid
            )
            report = convergence.run(controller, settings.resolved_database_url(), options, log=log)
        else:
            typer.echo(f"error: no scenario '{scenario}' (default, lb)", err=True)
            raise typer.Exit(2)
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    text = json.dumps(report) if json_output else json.dumps(report, indent=2)
    typer.echo(text)


@bench_app.command("agent")
def bench_agent(
    endpoints: Annotated[
        int, typer.Option(min=1, metavar="N", help="Local endpoints on the host.")
    ] = 250,
    samples: Annotated[
        int, typer.Option(min=1, metavar="N", help="Timed changes of each kind.")
    ] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time the reference Linux agent on one host in a network namespace (root)."""
    from controller.bench import agent
    from controller.bench.common import BenchError

    try:
        report = agent.run(
            agent.Options(endpoints=endpoints, samples=samples),
            log=lambda line: typer.echo(line, err=True),
        )
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if json_output else json.dumps(report, indent=2))


@bench_app.command("agent-lb")
def bench_agent_lb(
    vips: Annotated[int, typer.Option(min=1, metavar="N", help="Load-balancing rules.")] = 1000,
    dips: Annotated[int, typer.Option(min=1, metavar="N", help="DIPs per rule.")] = 10,
    samples: Annotated[
        int, typer.Option(min=1, metavar="N", help="Timed DIP changes (each out, then back).")
    ] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time the reference Linux agent's load balancing: VIPs of DIPs on one host (root)."""
    from controller.bench import agent_lb
    from controller.bench.common import BenchError

    try:
        report = agent_lb.run(
            agent_lb.Options(vips=vips, dips=dips, samples=samples),
            log=lambda line: typer.echo(line, err=True),
        )
    except BenchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(report) if json_output else json.dumps(report, indent=2))
