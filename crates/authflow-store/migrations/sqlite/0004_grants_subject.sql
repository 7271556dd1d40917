-- Revoking everything a user authorized (user disabled or removed) finds their grants by subject.
CREATE INDEX grants_subject ON grants (subject) WHERE subject IS NOT NULL;
