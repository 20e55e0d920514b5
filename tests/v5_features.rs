//! MQTT 5.0 features with a real 5.0 client library (`rumqttc::v5`), publisher and
//! subscriber homed on different shards: Subscription Identifiers on deliveries, topic
//! aliases in both directions, Message Expiry of queued messages, the Will Delay Interval
//! (not published for a client that came back through a takeover, published once due for one
//! that did not), a shared subscription with members on both shards, 3.1.1 and 5.0
//! clients exchanging messages both ways, and PUBACK / PUBREC telling a publisher that no
//! one subscribed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rumqttc::v5::mqttbytes::v5::{
    LastWill, LastWillProperties, Packet, Publish, PublishProperties, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

/// A 5.0 client whose event loop runs in a task, with its incoming packets on a channel.
struct V5 {
    client: AsyncClient,
    incoming: tokio::sync::mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl V5 {
    async fn connect(broker: &TestBroker, id: &str, tune: impl FnOnce(&mut MqttOptions)) -> V5 {
        let addr = broker.addr;
        let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        tune(&mut opts);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, mut incoming) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(p) = event {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
            }
        });
        loop {
            match tokio::time::timeout(WAIT, incoming.recv()).await {
                Ok(Some(Packet::ConnAck(ack))) => {
                    assert_eq!(
                        ack.code,
                        rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success
                    );
                    break;
                }
                Ok(Some(_)) => continue,
                other => panic!("no CONNACK for {id}: {other:?}"),
            }
        }
        V5 {
            client,
            incoming,
            task,
        }
    }

    /// The next PUBLISH within `within`, if any.
    async fn publish_within(&mut self, within: Duration) -> Option<Publish> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
                Ok(Some(Packet::Publish(p))) => return Some(p),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    async fn next_publish(&mut self) -> Publish {
        self.publish_within(WAIT)
            .await
            .expect("a PUBLISH within the wait")
    }

    async fn subscribe(&mut self, filter: &str, id: Option<usize>) {
        let props = SubscribeProperties {
            id,
            user_properties: Vec::new(),
        };
        self.client
            .subscribe_with_properties(filter, QoS::AtLeastOnce, props)
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(WAIT, self.incoming.recv()).await {
                Ok(Some(Packet::SubAck(_))) => return,
                Ok(Some(_)) => continue,
                other => panic!("no SUBACK for {filter}: {other:?}"),
            }
        }
    }

    /// The next PUBACK or PUBREC: (packet id, reason code).
    async fn next_ack(&mut self) -> (u16, u8) {
        use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubRecReason};
        loop {
            match tokio::time::timeout(WAIT, self.incoming.recv()).await {
                Ok(Some(Packet::PubAck(a))) => {
                    let code = match a.reason {
                        PubAckReason::Success => 0x00,
                        PubAckReason::NoMatchingSubscribers => 0x10,
                        other => panic!("PUBACK {other:?}"),
                    };
                    return (a.pkid, code);
                }
                Ok(Some(Packet::PubRec(r))) => {
                    let code = match r.reason {
                        PubRecReason::Success => 0x00,
                        PubRecReason::NoMatchingSubscribers => 0x10,
                        other => panic!("PUBREC {other:?}"),
                    };
                    return (r.pkid, code);
                }
                Ok(Some(_)) => continue,
                other => panic!("no PUBACK or PUBREC: {other:?}"),
            }
        }
    }

    /// Sends DISCONNECT and waits until the broker has closed the connection.
    async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }

    /// Drops the connection without DISCONNECT (the will applies).
    fn vanish(self) {
        self.task.abort();
    }
}

fn props(p: &Publish) -> PublishProperties {
    p.properties.clone().unwrap_or_default()
}

#[test]
fn deliveries_carry_the_identifiers_of_every_matching_subscription() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let mut sub = V5::connect(&broker, &id_on_shard("sid-sub", 0), |_| {}).await;
        sub.subscribe("sid/+/x", Some(7)).await;
        sub.subscribe("sid/#", Some(300_000)).await;
        sub.subscribe("other", Some(9)).await;
        let publisher = V5::connect(&broker, &id_on_shard("sid-pub", 1), |_| {}).await;
        publisher
            .client
            .publish("sid/a/x", QoS::AtLeastOnce, false, "both")
            .await
            .unwrap();
        let p = sub.next_publish().await;
        let mut ids = props(&p).subscription_identifiers;
        ids.sort();
        assert_eq!(ids, vec![7, 300_000]);
        publisher
            .client
            .publish("sid/b", QoS::AtMostOnce, false, "one")
            .await
            .unwrap();
        assert_eq!(
            props(&sub.next_publish().await).subscription_identifiers,
            vec![300_000]
        );
    });
}

#[test]
fn topic_aliases_work_both_ways_and_the_broker_uses_its_own_towards_the_subscriber() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let mut sub = V5::connect(&broker, &id_on_shard("ta-sub", 0), |o| {
            o.set_topic_alias_max(Some(4));
        })
        .await;
        sub.subscribe("ta/#", None).await;
        // The publisher binds alias 1 to "ta/long/topic/name" and then sends by alias only.
        let publisher = V5::connect(&broker, &id_on_shard("ta-pub", 1), |_| {}).await;
        let alias = |a: u16| PublishProperties {
            topic_alias: Some(a),
            ..Default::default()
        };
        for (topic, payload) in [("ta/long/topic/name", "bind"), ("", "by alias")] {
            publisher
                .client
                .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, alias(1))
                .await
                .unwrap();
        }
        publisher
            .client
            .publish("ta/other", QoS::AtLeastOnce, false, "plain")
            .await
            .unwrap();
        // Towards the subscriber, the broker binds its own aliases: the first PUBLISH names
        // the topic and binds one, the next sends an empty topic and the alias (rumqttc hands
        // packets over as they came).
        let first = sub.next_publish().await;
        let second = sub.next_publish().await;
        let third = sub.next_publish().await;
        assert_eq!(&first.topic[..], b"ta/long/topic/name");
        assert!(second.topic.is_empty(), "{:?}", second.topic);
        assert_eq!(&second.payload[..], b"by alias");
        let a = props(&first)
            .topic_alias
            .expect("the broker binds an alias");
        assert_eq!(props(&second).topic_alias, Some(a), "and uses it");
        assert_eq!(&third.topic[..], b"ta/other");
        assert_ne!(props(&third).topic_alias, Some(a));
        // An alias above the broker's Topic Alias Maximum ends the connection.
        let bad = V5::connect(&broker, &id_on_shard("ta-bad", 1), |_| {}).await;
        let _ = bad
            .client
            .publish_with_properties("ta/x", QoS::AtMostOnce, false, "x", alias(u16::MAX))
            .await;
        assert!(
            tokio::time::timeout(WAIT, bad.task).await.is_ok(),
            "the broker closes a connection that uses an invalid alias"
        );
    });
}

#[test]
fn a_queued_message_expires_and_one_that_lives_arrives_with_what_is_left_of_its_interval() {
    let broker = TestBroker::default_broker();
    let id = id_on_shard("exp-sub", 0);
    let persistent = |o: &mut MqttOptions| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(300));
    };
    block_on(async {
        let mut sub = V5::connect(&broker, &id, |o| {
            o.set_clean_start(true);
            o.set_session_expiry_interval(Some(300));
        })
        .await;
        sub.subscribe("exp/t", None).await;
        sub.disconnect().await;
        let publisher = V5::connect(&broker, &id_on_shard("exp-pub", 1), |_| {}).await;
        for (payload, secs) in [("short", 1), ("long", 60)] {
            let p = PublishProperties {
                message_expiry_interval: Some(secs),
                ..Default::default()
            };
            publisher
                .client
                .publish_with_properties("exp/t", QoS::AtLeastOnce, false, payload, p)
                .await
                .unwrap();
        }
        // Both are queued for the offline session; "short" runs out of time meanwhile.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let mut sub = V5::connect(&broker, &id, persistent).await;
        let p = sub.next_publish().await;
        assert_eq!(&p.payload[..], b"long");
        let left = props(&p)
            .message_expiry_interval
            .expect("the interval left");
        assert!((57..=59).contains(&left), "{left} s left of 60");
        assert!(sub.publish_within(QUIET).await.is_none(), "short expired");
    });
}

#[test]
fn a_delayed_will_is_not_published_for_a_client_that_came_back_and_is_once_due() {
    let broker = TestBroker::default_broker();
    let id = id_on_shard("wd-client", 0);
    let with_will = |payload: &'static str, delay: u32| {
        move |o: &mut MqttOptions| {
            o.set_clean_start(false);
            o.set_session_expiry_interval(Some(60));
            let props = LastWillProperties {
                delay_interval: Some(delay),
                payload_format_indicator: None,
                message_expiry_interval: None,
                content_type: None,
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            };
            o.set_last_will(LastWill::new(
                "wd/will",
                payload,
                QoS::AtLeastOnce,
                false,
                Some(props),
            ));
        }
    };
    block_on(async {
        let mut watcher = V5::connect(&broker, &id_on_shard("wd-watch", 1), |_| {}).await;
        watcher.subscribe("wd/will", None).await;
        // A connection with a 2 s will delay is taken over by the same client: the session
        // goes on, so its will never goes out.
        let first = V5::connect(&broker, &id, with_will("first", 2)).await;
        let second = V5::connect(&broker, &id, with_will("second", 1)).await;
        first.vanish();
        assert!(
            watcher
                .publish_within(Duration::from_millis(3000))
                .await
                .is_none(),
            "no will for a client that came back within the delay"
        );
        // The second connection vanishes: its will comes once its 1 s delay has passed.
        let gone = Instant::now();
        second.vanish();
        let will = watcher.next_publish().await;
        assert_eq!(&will.payload[..], b"second");
        assert!(
            gone.elapsed() >= Duration::from_millis(900),
            "{:?}",
            gone.elapsed()
        );
        assert!(watcher.publish_within(QUIET).await.is_none(), "once");
    });
}

#[test]
fn a_shared_subscription_across_shards_gives_each_message_to_one_member() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let mut a = V5::connect(&broker, &id_on_shard("sh-a", 0), |_| {}).await;
        let mut b = V5::connect(&broker, &id_on_shard("sh-b", 1), |_| {}).await;
        a.subscribe("$share/g/sh/t", Some(1)).await;
        b.subscribe("$share/g/sh/t", Some(2)).await;
        let publisher = V5::connect(&broker, &id_on_shard("sh-pub", 1), |_| {}).await;
        const N: usize = 20;
        for i in 0..N {
            publisher
                .client
                .publish("sh/t", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < N {
            tokio::select! {
                Some(p) = a.publish_within(WAIT) => {
                    assert_eq!(props(&p).subscription_identifiers, vec![1]);
                    seen.push(p.payload);
                }
                Some(p) = b.publish_within(WAIT) => {
                    assert_eq!(props(&p).subscription_identifiers, vec![2]);
                    seen.push(p.payload);
                }
                else => panic!("only {} of {N} arrived", seen.len()),
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), N, "each message once");
        assert!(a.publish_within(QUIET).await.is_none());
        assert!(b.publish_within(QUIET).await.is_none());
    });
}

#[test]
fn clients_of_3_1_1_and_5_0_exchange_messages_both_ways() {
    let broker = TestBroker::default_broker();
    // 3.1.1 subscriber (raw), 5.0 publisher with properties: the message arrives, plain.
    let mut v3 = broker.client(&id_on_shard("mix-v3", 0), true);
    v3.subscribe(1, &[("mix/from5", shardmq::codec::QoS::AtLeastOnce)]);
    block_on(async {
        let mut v5 = V5::connect(&broker, &id_on_shard("mix-v5", 1), |_| {}).await;
        v5.subscribe("mix/#", Some(5)).await;
        let p = PublishProperties {
            message_expiry_interval: Some(60),
            user_properties: vec![("k".into(), "v".into())],
            ..Default::default()
        };
        v5.client
            .publish_with_properties("mix/from5", QoS::AtLeastOnce, false, "five", p)
            .await
            .unwrap();
        // The 5.0 subscriber gets its own copy, properties kept (awaited first: the raw
        // client below blocks this thread, the 5.0 client's event loop included).
        let own = v5.next_publish().await;
        assert_eq!(props(&own).user_properties, vec![("k".into(), "v".into())]);
        let got = v3.recv_publish();
        assert_eq!(
            (&got.topic[..], &got.payload[..]),
            ("mix/from5", &b"five"[..])
        );
        // 3.1.1 publisher to the 5.0 subscriber.
        v3.publish1("mix/from3", b"three", 7);
        let p = v5.next_publish().await;
        assert_eq!(&p.topic[..], b"mix/from3");
        assert_eq!(props(&p).subscription_identifiers, vec![5]);
    });
}

/// MQTT 5.0 lets the server say that a message it accepted matched no subscription (0x10),
/// as EMQ X and Mosquitto do; a subscriber on any shard makes it 0x00 again.
#[test]
fn a_publisher_is_told_when_its_message_matched_no_subscription() {
    let broker = TestBroker::default_broker();
    block_on(async {
        let mut publisher = V5::connect(&broker, &id_on_shard("nomatch-pub", 0), |_| {}).await;
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            publisher
                .client
                .publish("nomatch/t", qos, false, "nobody")
                .await
                .unwrap();
            assert_eq!(publisher.next_ack().await.1, 0x10, "{qos:?}");
        }
        let mut sub = V5::connect(&broker, &id_on_shard("nomatch-sub", 1), |_| {}).await;
        sub.subscribe("nomatch/#", None).await;
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            publisher
                .client
                .publish("nomatch/t", qos, false, "somebody")
                .await
                .unwrap();
            assert_eq!(publisher.next_ack().await.1, 0x00, "{qos:?}");
            assert_eq!(&sub.next_publish().await.payload[..], b"somebody");
        }
    });
}
