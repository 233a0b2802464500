"""Share validation, difficulty, and the durable record of accepted shares."""
