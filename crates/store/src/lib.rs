//! pushgate's storage on SQLite, PostgreSQL and MySQL/MariaDB
