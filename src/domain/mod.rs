//! The rules, with no I/O and no clocks: given the current consent of a contact and an inbound
//! message, what events follow. Everything here is tested next to the code.

pub mod analytics;
pub mod canonical;
pub mod clock;
pub mod consent;
pub mod contact;
pub mod decide;
pub mod erasure;
pub mod event;
pub mod inbound;
pub mod keywords;
pub mod language;
pub mod person;
pub mod policy;
pub mod replies;
pub mod tenant;
