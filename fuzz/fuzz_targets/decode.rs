//! Arbitrary bytes into every decoder: the generic JSON path and the typed path for each of the
//! four schemas, the bound typed readers (schema checked once, straight-line code) of the seed records,
//! and the resolving v2→v1 and v1→v2 plans.
//! Nothing may panic; anything that decodes must re-encode and decode to the same JSON.
#![no_main]

use std::sync::{Arc, OnceLock};

use avro_edge::{Bound, Plan, Resolver};
use avro_edge::records::{Order, SensorData, UserRegistration};
use libfuzzer_sys::fuzz_target;

const SCHEMAS: [&str; 4] = [
    include_str!("../../schemas/user-registration.avsc"),
    include_str!("../../schemas/orders.avsc"),
    include_str!("../../schemas/sensor-data.avsc"),
    include_str!("../../schemas/sensor-data-v2.avsc"),
];

struct Plans {
    plans: Vec<Arc<Plan>>,
    v2_to_v1: Resolver,
    v1_to_v2: Resolver,
    users: Bound<UserRegistration>,
    orders: Bound<Order>,
    sensors: Bound<SensorData>,
}

fn plans() -> &'static Plans {
    static P: OnceLock<Plans> = OnceLock::new();
    P.get_or_init(|| {
        let plans: Vec<Arc<Plan>> = SCHEMAS
            .iter()
            .map(|s| Arc::new(Plan::compile_str(s).unwrap()))
            .collect();
        let v2_to_v1 = Resolver::new(plans[3].clone(), plans[2].clone()).unwrap();
        let v1_to_v2 = Resolver::new(plans[2].clone(), plans[3].clone()).unwrap();
        let users = plans[0].bind::<UserRegistration>().unwrap();
        let orders = plans[1].bind::<Order>().unwrap();
        let sensors = plans[2].bind::<SensorData>().unwrap();
        Plans {
            plans,
            v2_to_v1,
            v1_to_v2,
            users,
            orders,
            sensors,
        }
    })
}

fn json_same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    // NaN != NaN in serde_json's equality; compare the text form instead.
    a.to_string() == b.to_string()
}

fuzz_target!(|data: &[u8]| {
    let p = plans();
    for plan in &p.plans {
        if let Ok(v) = plan.decode_json(data) {
            let mut out = Vec::new();
            plan.encode_json_into(&v, &mut out)
                .expect("decoded JSON must re-encode");
            let again = plan
                .decode_json(&out)
                .expect("re-encoded bytes must decode");
            assert!(json_same(&v, &again), "round trip changed {v} into {again}");
        }
    }
    let _ = p.plans[0].decode::<UserRegistration>(data);
    let _ = p.plans[1].decode::<Order>(data);
    if let Ok(s) = p.plans[2].decode::<SensorData>(data) {
        let mut out = Vec::new();
        p.plans[2]
            .encode_into(&s, &mut out)
            .expect("typed value must re-encode");
    }
    // The bound readers must agree with the serde path: same success, same value re-encoded.
    if let Ok(u) = p.users.decode(data) {
        let mut out = Vec::new();
        p.users.encode_into(&u, &mut out);
        assert_eq!(p.plans[0].decode::<UserRegistration>(&out).ok(), Some(u));
    }
    if let Ok(o) = p.orders.decode(data) {
        let mut out = Vec::new();
        p.orders.encode_into(&o, &mut out);
        assert!(p.plans[1].decode::<Order>(&out).is_ok());
    }
    assert_eq!(
        p.sensors.decode(data).is_ok(),
        p.plans[2].decode::<SensorData>(data).is_ok()
    );
    let _ = p.v2_to_v1.decode_json(data);
    let _ = p.v1_to_v2.decode_json(data);
});
