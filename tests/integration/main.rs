//! One integration-test binary; its modules live beside it.

mod meetings;
