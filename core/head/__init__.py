"""Head models: one FLAME-structured ``HeadModel`` type, whatever its source (open head or FLAME)."""
