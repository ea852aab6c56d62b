"""Stage 6, the report: ``python -m tuning.report STUDY.yaml`` draws a study's pictures and one
``report.html`` from what MLflow holds."""
