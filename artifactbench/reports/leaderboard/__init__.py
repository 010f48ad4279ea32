"""The leaderboard: merge run directories, render markdown and a self-contained HTML page."""
