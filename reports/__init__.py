"""Reports: tables and plots rendered from the results store only."""
