"""Ray-based drivers: parallel synthetic cohorts now; cohort processing (issue 6) later."""
