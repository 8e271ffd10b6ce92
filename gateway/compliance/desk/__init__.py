"""The compliance desk: server-rendered pages over the audit trail, served by the gateway at /desk."""
