"""Evolution of populations of specs: mutation by exact rewrites, crossover, tournaments."""
