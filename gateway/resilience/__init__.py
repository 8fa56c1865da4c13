"""Per-worker protection state (retry budgets, and what the breaker and pools add) and its pure helpers.

State here lives outside the route table, keyed by stable ids (route id, pool name), so it survives a reload
when its config did not change. It is per worker process: N workers keep N independent budgets.
"""
