// Kafka's own Java client, driven through the proxy by tests/integration/test_java_client.py.
// Run with Java's single-file launcher: java -cp '<kafka jars>/*' ClientScenarios.java SCENARIO BOOTSTRAP ...
// Each scenario prints "OK ..." lines on success and exits non-zero with a reason otherwise.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.*;

public class ClientScenarios {
    // TENANTRY_SASL="MECHANISM:user:password" logs in to a tenant proxy; unset means no login.
    static Properties base(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        String sasl = System.getenv("TENANTRY_SASL");
        if (sasl != null && !sasl.isEmpty()) {
            String[] parts = sasl.split(":", 3);
            String module = parts[0].equals("PLAIN") ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                    : "org.apache.kafka.common.security.scram.ScramLoginModule";
            p.put("security.protocol", "SASL_PLAINTEXT");
            p.put("sasl.mechanism", parts[0]);
            p.put("sasl.jaas.config", module + " required username=\"" + parts[1] + "\" password=\"" + parts[2] + "\";");
        }
        // TENANTRY_OAUTH="token endpoint URL|client id|scope": OAUTHBEARER with tokens from that endpoint (KIP-768).
        String oauth = System.getenv("TENANTRY_OAUTH");
        if (oauth != null && !oauth.isEmpty()) {
            String[] parts = oauth.split("\\|", 3);
            p.put("security.protocol", "SASL_PLAINTEXT");
            p.put("sasl.mechanism", "OAUTHBEARER");
            p.put("sasl.oauthbearer.token.endpoint.url", parts[0]);
            p.put("sasl.login.callback.handler.class",
                  "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler");
            p.put("sasl.jaas.config", "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required"
                  + " clientId=\"" + parts[1] + "\" clientSecret=\"unused\" scope=\"" + parts[2] + "\";");
        }
        // TENANTRY_TRUSTSTORE=a PEM CA file: TLS to the proxy, whose certificate that CA signed.
        String ca = System.getenv("TENANTRY_TRUSTSTORE");
        if (ca != null && !ca.isEmpty()) {
            p.put("security.protocol", sasl != null && !sasl.isEmpty() ? "SASL_SSL" : "SSL");
            p.put("ssl.truststore.type", "PEM");
            p.put("ssl.truststore.location", ca);
        }
        return p;
    }

    static KafkaProducer<String, String> producer(String bootstrap, Map<String, Object> extra) {
        Properties p = base(bootstrap);
        p.put("acks", "all");
        p.putAll(extra);
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, Map<String, Object> extra) {
        Properties p = base(bootstrap);
        p.put("group.id", group);
        p.put("auto.offset.reset", "earliest");
        p.putAll(extra);
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    static void createTopic(String bootstrap, String topic, int partitions) throws Exception {
        try (Admin admin = Admin.create(base(bootstrap))) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
    }

    static List<String> drain(KafkaConsumer<String, String> c, int count) {
        List<String> out = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 60_000;
        while (out.size() < count && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) out.add(r.value());
        }
        if (out.size() < count) throw new IllegalStateException("got " + out.size() + " of " + count + " records");
        return out;
    }

    // Produce with the idempotent producer (the Java default), consume in a group, commit, resume.
    static void produceConsume(String bootstrap, String topic) throws Exception {
        createTopic(bootstrap, topic, 2);
        try (KafkaProducer<String, String> p = producer(bootstrap, Map.of("enable.idempotence", "true"))) {
            for (int i = 0; i < 500; i++) p.send(new ProducerRecord<>(topic, "k" + i, "v" + i));
            p.flush();
        }
        String group = "java-" + UUID.randomUUID();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, group, Map.of("enable.auto.commit", "false"))) {
            c.subscribe(List.of(topic));
            List<String> got = drain(c, 500);
            c.commitSync();
            System.out.println("OK consumed " + got.size());
        }
        try (KafkaConsumer<String, String> c = consumer(bootstrap, group, Map.of())) {
            Set<TopicPartition> parts = Set.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
            long committed = 0;
            for (OffsetAndMetadata o : c.committed(parts).values()) committed += o.offset();
            if (committed != 500) throw new IllegalStateException("committed " + committed);
            System.out.println("OK committed " + committed);
        }
    }

    // Two members of one group; the second joining takes half the partitions (classic or KIP-848).
    static void group(String bootstrap, String topic, String protocol) throws Exception {
        createTopic(bootstrap, topic, 4);
        String group = "java-g-" + UUID.randomUUID();
        Map<String, Object> extra = Map.of("group.protocol", protocol);
        try (KafkaConsumer<String, String> a = consumer(bootstrap, group, extra);
             KafkaConsumer<String, String> b = consumer(bootstrap, group, extra)) {
            a.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (a.assignment().size() != 4 && System.currentTimeMillis() < deadline) a.poll(Duration.ofMillis(200));
            if (a.assignment().size() != 4) throw new IllegalStateException("first member has " + a.assignment());
            b.subscribe(List.of(topic));
            while (System.currentTimeMillis() < deadline
                    && !(a.assignment().size() == 2 && b.assignment().size() == 2)) {
                a.poll(Duration.ofMillis(100));
                b.poll(Duration.ofMillis(100));
            }
            if (a.assignment().size() != 2 || b.assignment().size() != 2)
                throw new IllegalStateException("no rebalance: " + a.assignment() + " / " + b.assignment());
            System.out.println("OK rebalanced " + protocol);
        }
    }

    static void transactions(String bootstrap, String topic) throws Exception {
        createTopic(bootstrap, topic, 1);
        try (KafkaProducer<String, String> p = producer(bootstrap, Map.of("transactional.id", "java-tx-" + UUID.randomUUID()))) {
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "aborted"));
            p.abortTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, "committed"));
            p.commitTransaction();
        }
        try (KafkaConsumer<String, String> c = consumer(bootstrap, "java-rc-" + UUID.randomUUID(),
                Map.of("isolation.level", "read_committed"))) {
            c.subscribe(List.of(topic));
            List<String> got = drain(c, 1);
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofSeconds(2))) got.add(r.value());
            if (!got.equals(List.of("committed"))) throw new IllegalStateException("read_committed saw " + got);
            System.out.println("OK transactions");
        }
    }

    static void admin(String bootstrap, String topic) throws Exception {
        try (Admin admin = Admin.create(base(bootstrap))) {
            for (Node n : admin.describeCluster().nodes().get(30, TimeUnit.SECONDS))
                System.out.println("NODE " + n.host() + ":" + n.port());
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                    .configs(Map.of("retention.ms", "7200000")))).all().get(30, TimeUnit.SECONDS);
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            String retention = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS)
                    .get(res).get("retention.ms").value();
            if (!retention.equals("7200000")) throw new IllegalStateException("retention.ms " + retention);
            String group = "java-list-" + UUID.randomUUID();
            try (KafkaConsumer<String, String> c = consumer(bootstrap, group, Map.of())) {
                c.subscribe(List.of(topic));
                long deadline = System.currentTimeMillis() + 30_000;
                while (c.assignment().isEmpty() && System.currentTimeMillis() < deadline) c.poll(Duration.ofMillis(200));
                // listConsumerGroups, not 4.x's listGroups, so the same program runs against Kafka 3.9.
                boolean listed = admin.listConsumerGroups().all().get(30, TimeUnit.SECONDS).stream()
                        .anyMatch(g -> g.groupId().equals(group));
                if (!listed) throw new IllegalStateException("group not listed");
            }
            admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
            System.out.println("OK admin");
        }
    }

    // Create topics of `partitions` partitions each, one per admin client (so one connection's throttle does
    // not hold back the next), without the admin client's retries on THROTTLING_QUOTA_EXCEEDED (KIP-599).
    // Prints each result: "CREATED name" or "ERROR name Exception: message".
    static void mutations(String bootstrap, String topic, int count, int partitions) throws Exception {
        for (int i = 0; i < count; i++) {
            String name = topic + "-" + i;
            try (Admin admin = Admin.create(base(bootstrap))) {
                admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1)),
                        new CreateTopicsOptions().retryOnQuotaViolation(false)).all().get(30, TimeUnit.SECONDS);
                System.out.println("CREATED " + name);
            } catch (ExecutionException e) {
                System.out.println("ERROR " + name + " " + e.getCause().getClass().getSimpleName() + ": "
                        + e.getCause().getMessage());
            }
        }
        String first = topic + "-0";  // then delete the first, again on a connection of its own
        try (Admin admin = Admin.create(base(bootstrap))) {
            admin.deleteTopics(List.of(first), new DeleteTopicsOptions().retryOnQuotaViolation(false))
                    .all().get(30, TimeUnit.SECONDS);
            System.out.println("DELETED " + first);
        } catch (ExecutionException e) {
            System.out.println("ERROR " + first + " " + e.getCause().getClass().getSimpleName() + ": "
                    + e.getCause().getMessage());
        }
    }

    // Consume `count` records of an existing topic from the start in a new group (fetch sessions and all).
    static void consume(String bootstrap, String topic, int count) throws Exception {
        try (KafkaConsumer<String, String> c = consumer(bootstrap, "java-read-" + UUID.randomUUID(), Map.of())) {
            c.subscribe(List.of(topic));
            System.out.println("OK consumed " + drain(c, count).size());
        }
    }

    // Join a new group with `protocol` (classic or consumer) and print "JOINED" once assigned, or
    // "ERROR Exception: message" if the group is refused.
    static void join(String bootstrap, String topic, String group, String protocol) throws Exception {
        try (KafkaConsumer<String, String> c = consumer(bootstrap, group, Map.of("group.protocol", protocol))) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (c.assignment().isEmpty() && System.currentTimeMillis() < deadline) c.poll(Duration.ofMillis(200));
            System.out.println(c.assignment().isEmpty() ? "TIMEOUT" : "JOINED");
        } catch (KafkaException e) {
            System.out.println("ERROR " + e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    public static void main(String[] args) throws Exception {
        String scenario = args[0], bootstrap = args[1], topic = args[2];
        switch (scenario) {
            case "produce-consume" -> produceConsume(bootstrap, topic);
            case "group" -> group(bootstrap, topic, args[3]);
            case "transactions" -> transactions(bootstrap, topic);
            case "admin" -> admin(bootstrap, topic);
            case "join" -> join(bootstrap, topic, args[3], args[4]);
            case "consume" -> consume(bootstrap, topic, Integer.parseInt(args[3]));
            case "mutations" -> mutations(bootstrap, topic, Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            default -> throw new IllegalArgumentException("unknown scenario " + scenario);
        }
    }
}
