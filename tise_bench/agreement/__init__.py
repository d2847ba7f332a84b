"""Meta-evaluation: agreement of every metric with human ratings (Kendall τ-b / τ-c, Spearman ρ, pairwise
accuracy, bootstrap intervals). ``python -m tise_bench.agreement data=<d> human=<ratings.csv>``; the functions
are in :mod:`.stats` (pure) and :mod:`.human` (ratings file + run folders)."""
