// The migrations are embedded at compile time (`sqlx::migrate!` for PostgreSQL, `include_str!` for SQLite);
// rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
