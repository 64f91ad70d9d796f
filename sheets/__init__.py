"""The dashboard: what it shows (queries) and where it goes (Google Sheets or a workbook)."""
