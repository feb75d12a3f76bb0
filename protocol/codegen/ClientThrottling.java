import java.lang.reflect.Constructor;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.requests.AbstractResponse;

// Prints, per API key, the first response version whose clients throttle themselves (KIP-219), from
// AbstractResponse.shouldClientThrottle in the kafka-clients jar: "never" if none does. Run by `make codegen`.
public class ClientThrottling {
    public static void main(String[] args) {
        for (ApiKeys key : ApiKeys.values()) {
            if (!key.hasValidVersion()) {
                continue;  // removed from this Kafka version (LeaderAndIsr and other ZooKeeper-era APIs)
            }
            System.out.println(key.id + " " + firstThrottlingVersion(key));
        }
    }

    static String firstThrottlingVersion(ApiKeys key) {
        ApiMessage data = key.messageType.newResponse();
        AbstractResponse response = null;
        String name = data.getClass().getSimpleName().replace("Data", "");
        if (name.equals("OffsetForLeaderEpochResponse")) {
            name = "OffsetsForLeaderEpochResponse";  // the one response class named apart from its schema
        }
        try {
            Class<?> cls = Class.forName("org.apache.kafka.common.requests." + name);
            for (Constructor<?> c : cls.getDeclaredConstructors()) {
                Class<?>[] p = c.getParameterTypes();
                if (p.length >= 1 && p[0].isInstance(data) && (p.length == 1 || (p.length == 2 && p[1] == short.class))) {
                    c.setAccessible(true);
                    response = (AbstractResponse) (p.length == 1 ? c.newInstance(data)
                        : c.newInstance(data, key.latestVersion(true)));
                    break;
                }
            }
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot build a response of " + key + ": " + e, e);
        }
        if (response == null) {
            throw new IllegalStateException("no response constructor for " + key);
        }
        for (short v = key.oldestVersion(); v <= key.latestVersion(true); v++) {
            if (response.shouldClientThrottle(v)) {
                return Short.toString(v);
            }
        }
        return "never";
    }
}
