"""`make demo`: a realistic 2022-2024 sent through the public HTTP APIs, then the 2023 bilan."""
