-- The schema kb's SQLite database had before migrations (sqlite-utils, tables made on first use),
-- as of the first release with gaps: gaps has no "fix" column yet (it was added in place later).

CREATE TABLE "requests" (
   "id" TEXT PRIMARY KEY,
   "ts" REAL,
   "kind" TEXT,
   "session" TEXT,
   "query" TEXT,
   "locale" TEXT,
   "answered" INTEGER,
   "top_confidence" REAL,
   "fallback" INTEGER,
   "results" TEXT,
   "source" TEXT
);
CREATE TABLE "events" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL,
   "session" TEXT,
   "type" TEXT,
   "request_id" TEXT,
   "slug" TEXT,
   "data" TEXT
);
CREATE TABLE "feedback" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL,
   "request_id" TEXT,
   "slug" TEXT,
   "helpful" INTEGER,
   "comment" TEXT,
   "session" TEXT,
   "source" TEXT,
   "query" TEXT,
   "locale" TEXT
);
CREATE INDEX "idx_requests_ts"
    ON "requests" ("ts");
CREATE INDEX "idx_requests_session"
    ON "requests" ("session");
CREATE INDEX "idx_events_ts"
    ON "events" ("ts");
CREATE INDEX "idx_events_session"
    ON "events" ("session");
CREATE INDEX "idx_events_type_ts"
    ON "events" ("type", "ts");
CREATE INDEX "idx_feedback_ts"
    ON "feedback" ("ts");
CREATE INDEX "idx_feedback_slug"
    ON "feedback" ("slug");
CREATE TABLE "tickets" (
   "id" TEXT PRIMARY KEY,
   "ts" REAL,
   "name" TEXT,
   "email" TEXT,
   "subject" TEXT,
   "body" TEXT,
   "category" TEXT,
   "locale" TEXT,
   "session" TEXT,
   "request_id" TEXT,
   "transcript" TEXT,
   "idempotency_key" TEXT,
   "ip_hash" TEXT,
   "status" TEXT
);
CREATE TABLE "outbox" (
   "id" INTEGER PRIMARY KEY,
   "ticket_id" TEXT REFERENCES "tickets"("id"),
   "sink" TEXT,
   "status" TEXT,
   "attempts" INTEGER,
   "next_attempt_at" REAL,
   "last_error" TEXT,
   "delivered_at" REAL,
   "claimed_until" REAL
);
CREATE UNIQUE INDEX "idx_tickets_idempotency_key"
    ON "tickets" ("idempotency_key");
CREATE INDEX "idx_tickets_ts"
    ON "tickets" ("ts");
CREATE INDEX "idx_tickets_status_ts"
    ON "tickets" ("status", "ts");
CREATE UNIQUE INDEX "idx_outbox_ticket_id_sink"
    ON "outbox" ("ticket_id", "sink");
CREATE INDEX "idx_outbox_status_next_attempt_at"
    ON "outbox" ("status", "next_attempt_at");
CREATE TABLE "users" (
   "id" INTEGER PRIMARY KEY,
   "email" TEXT NOT NULL,
   "role" TEXT NOT NULL,
   "password_hash" TEXT NOT NULL,
   "created" REAL,
   "disabled" INTEGER
);
CREATE UNIQUE INDEX "idx_users_email"
    ON "users" ("email");
CREATE TABLE "admin_sessions" (
   "id_hash" TEXT PRIMARY KEY,
   "user_id" INTEGER,
   "created" REAL,
   "expires" REAL
);
CREATE TABLE "gaps" (
   "id" INTEGER PRIMARY KEY,
   "label" TEXT,
   "key_terms" TEXT,
   "status" TEXT DEFAULT 'open',
   "linked_slug" TEXT,
   "linked_at" REAL,
   "replay_total" INTEGER,
   "replay_before" INTEGER,
   "replay_after" INTEGER,
   "replayed_at" REAL,
   "locale" TEXT,
   "first_seen" REAL,
   "last_seen" REAL,
   "size" INTEGER,
   "sessions" INTEGER,
   "impact" REAL,
   "centroid" BLOB,
   "closest_slug" TEXT,
   "closest_title" TEXT,
   "closest_confidence" REAL,
   "active" INTEGER DEFAULT 1,
   "created" REAL,
   "refreshed_at" REAL
);
CREATE TABLE "gap_misses" (
   "gap_id" INTEGER,
   "miss_key" TEXT,
   "kind" TEXT,
   "text" TEXT,
   "locale" TEXT,
   "ts" REAL,
   "session" TEXT,
   "comment" TEXT
);
CREATE INDEX "idx_gap_misses_gap_id_ts"
    ON "gap_misses" ("gap_id", "ts");
CREATE TABLE "gap_runs" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL,
   "misses" INTEGER,
   "gaps" INTEGER,
   "seconds" REAL
);
