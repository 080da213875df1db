"""What a run's rows say: leaderboards, the recommendation, the regression gate, diagnostics, calibration."""
