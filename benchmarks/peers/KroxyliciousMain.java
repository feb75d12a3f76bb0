// Starts Kroxylicious (from its Maven Central runtime jar) with a YAML config: the benchmark's peer proxy.
// With a second argument, its in-memory KMS of that name first gets a KEK aliased by that name, for the
// RecordEncryption filter (the KMS lives in this JVM, so the key must be made here, before the proxy starts).
import io.kroxylicious.kms.provider.kroxylicious.inmemory.IntegrationTestingKmsService;
import io.kroxylicious.proxy.KafkaProxy;
import io.kroxylicious.proxy.config.ConfigParser;
import io.kroxylicious.proxy.internal.config.Features;
import java.nio.file.Files;
import java.nio.file.Path;

public class KroxyliciousMain {
    public static void main(String[] args) throws Exception {
        if (args.length > 1) {
            var service = IntegrationTestingKmsService.newInstance();
            service.initialize(new IntegrationTestingKmsService.Config(args[1]));
            var kms = service.buildKms();
            kms.createAlias(kms.generateKey(), args[1]);
        }
        ConfigParser parser = new ConfigParser();
        var config = parser.parseConfiguration(Files.readString(Path.of(args[0])));
        try (KafkaProxy proxy = new KafkaProxy(parser, config, Features.defaultFeatures())) {
            proxy.startup();
            proxy.block();
        }
    }
}
