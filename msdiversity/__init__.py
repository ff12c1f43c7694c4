"""msdiversity: the solution space of human musculoskeletal control.

Train ensembles of muscle-driven motion-imitation policies (MS-Emulator method) on one reference
motion, then measure specificity (how exactly kinematics and GRF are reproduced) against diversity
(how different the muscle solutions are), and write an interactive HTML report.
"""

__version__ = "0.1.0"
