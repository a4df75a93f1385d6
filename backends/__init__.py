"""graphc's backends: each runs graphs; `reference` interprets them on numpy."""
