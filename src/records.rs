//! Typed Rust records for the seed schemas (`UserRegistration`, `Order`, `SensorData`).
//!
//! Field names follow the schemas (camelCase on the wire). Must not carry a second copy of the
//! schemas: their encoding is checked against `schemas/*.avsc` (tests/codec_records.rs).
//! `UserRegistration`'s `Debug` redacts the password, so it never reaches a log.
//!
//! Each type is declared through [`crate::avro_record!`] / [`crate::avro_enum!`], which add the
//! serde renaming and generate the bound fast path ([`crate::codec::AvroRecord`]); the field list
//! is written once, and `Plan::bind` checks it against the schema file at run time.

use serde::{Deserialize, Serialize};

use crate::{avro_enum, avro_record};

avro_record! {
    /// `schemas/user-registration.avsc` (`UserRegistration`).
    #[derive(Clone, PartialEq, Serialize, Deserialize)]
    pub struct UserRegistration {
        pub user_id: String,
        pub email: String,
        pub password: String,
        pub created_at: i64,
        pub profile: Option<UserProfile>,
    }
}

impl std::fmt::Debug for UserRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRegistration")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("profile", &self.profile)
            .finish()
    }
}

avro_record! {
    /// The `UserProfile` record inside `UserRegistration.profile`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct UserProfile {
        pub first_name: String,
        pub last_name: String,
        pub age: Option<i32>,
        pub address: Option<String>,
    }
}

avro_record! {
    /// `schemas/orders.avsc` (`Order`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Order {
        pub order_id: String,
        pub user_id: String,
        pub order_date: i64,
        pub products: Vec<Product>,
        pub total_amount: f64,
    }
}

avro_record! {
    /// The `Product` record inside `Order.products`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Product {
        pub product_id: String,
        pub product_name: String,
        pub quantity: i32,
        pub price: f64,
    }
}

avro_record! {
    /// `schemas/sensor-data.avsc` (`SensorData`, v1).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SensorData {
        pub sensor_id: String,
        pub timestamp: i64,
        pub temperature: Option<f32>,
        pub humidity: Option<f32>,
        pub status: SensorStatus,
    }
}

avro_enum! {
    /// The `SensorStatus` enum: symbols `NORMAL`, `WARNING`, `CRITICAL`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum SensorStatus {
        Normal,
        Warning,
        Critical,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let u = UserRegistration {
            user_id: "u".into(),
            email: "e@x".into(),
            password: "hunter2".into(),
            created_at: 1,
            profile: None,
        };
        let s = format!("{u:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("<redacted>") && s.contains("e@x"), "{s}");
    }
}
