"""The saga console: a web page for a running stack (orders, their timelines and traces,
approvals and other actions, dead letters, throughput and latency).

`python -m ordersaga.console --host 127.0.0.1 --port N` (what `ordersaga up --observe` starts)
or `ordersaga console`; the stack is the one in the run directory (`ORDERSAGA_HOME`).
"""
