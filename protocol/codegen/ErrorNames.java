// Prints every Kafka error code and its name, from the kafka-clients jar: run by `make codegen`.
public class ErrorNames {
    public static void main(String[] args) {
        for (org.apache.kafka.common.protocol.Errors e : org.apache.kafka.common.protocol.Errors.values()) {
            System.out.println(e.code() + " " + e.name());
        }
    }
}
