"""Preemption, opt-in: which running pods may be taken back, for whom, and at what cost
(reclaim of borrowed shares, room for an overdue wide pod, priority), with the rules that
keep it from thrashing. No I/O: the simulator and the operator drive it alike."""
