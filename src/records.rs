//! Typed Rust records for the seed schemas (`UserRegistration`, `Order`, `SensorData`).
//!
//! Field names follow the schemas (camelCase on the wire). Must not carry a second copy of the
//! schemas: their encoding is checked against `schemas/*.avsc` (tests/codec/records.rs).
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
        /// `userId`: the user's id.
        pub user_id: String,
        /// `email`: the user's e-mail address.
        pub email: String,
        /// `password`: as sent; redacted in `Debug` output.
        pub password: String,
        /// `createdAt`: registration time, milliseconds since the Unix epoch.
        pub created_at: i64,
        /// `profile`: optional personal details (`["null", UserProfile]`).
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
        /// `firstName`.
        pub first_name: String,
        /// `lastName`.
        pub last_name: String,
        /// `age` in years, if given (`["null", "int"]`).
        pub age: Option<i32>,
        /// `address`, free text, if given (`["null", "string"]`).
        pub address: Option<String>,
    }
}

avro_record! {
    /// `schemas/orders.avsc` (`Order`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Order {
        /// `orderId`: the order's id.
        pub order_id: String,
        /// `userId`: who ordered.
        pub user_id: String,
        /// `orderDate`: order time, milliseconds since the Unix epoch.
        pub order_date: i64,
        /// `products`: the order lines.
        pub products: Vec<Product>,
        /// `totalAmount`: the order total (a `double`; currency is not part of the schema).
        pub total_amount: f64,
    }
}

avro_record! {
    /// The `Product` record inside `Order.products`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Product {
        /// `productId`.
        pub product_id: String,
        /// `productName`: display name.
        pub product_name: String,
        /// `quantity`: units ordered.
        pub quantity: i32,
        /// `price`: unit price (a `double`).
        pub price: f64,
    }
}

avro_record! {
    /// `schemas/sensor-data.avsc` (`SensorData`, v1).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SensorData {
        /// `sensorId`: which sensor sent the reading.
        pub sensor_id: String,
        /// `timestamp`: reading time, milliseconds since the Unix epoch.
        pub timestamp: i64,
        /// `temperature`, if the sensor measures it (`["null", "float"]`).
        pub temperature: Option<f32>,
        /// `humidity`, if the sensor measures it (`["null", "float"]`).
        pub humidity: Option<f32>,
        /// `status`: the sensor's own health/alarm level.
        pub status: SensorStatus,
    }
}

avro_enum! {
    /// The `SensorStatus` enum: symbols `NORMAL`, `WARNING`, `CRITICAL`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum SensorStatus {
        /// `NORMAL`: reading within range.
        Normal,
        /// `WARNING`: reading near a limit.
        Warning,
        /// `CRITICAL`: reading past a limit.
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
