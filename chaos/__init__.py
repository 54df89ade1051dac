"""steadfetch chaos suite: real Redis behind real Toxiproxy, faults, workloads and checkers."""
