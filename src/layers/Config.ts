import { Config, Context, Duration, Effect, Layer, Option, Redacted } from "effect"

/** Every setting of SPEC §7.1 plus the tuning knobs the workers need; all read from the environment. */
export interface AppSettings {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly databaseMaxConnections: number
  readonly dataDir: string
  readonly redisUrl: Option.Option<Redacted.Redacted>
  readonly s3Bucket: Option.Option<string>
  readonly s3Endpoint: Option.Option<string>
  readonly s3Region: string
  readonly s3ForcePathStyle: boolean
  readonly adminEmail: string
  readonly adminPassword: Option.Option<Redacted.Redacted>
  readonly seedDemo: boolean
  readonly workerConcurrency: number
  readonly workerBatchSize: number
  readonly workerPollInterval: Duration.Duration
  readonly orderMaxRetries: number
  readonly retryBaseDelay: Duration.Duration
  readonly retryMaxDelay: Duration.Duration
  readonly allowPrivateCallbackUrls: boolean
  readonly trustedProxies: ReadonlyArray<string>
  readonly otlpEndpoint: Option.Option<string>
  readonly logLevel: string
  readonly sessionTtl: Duration.Duration
  readonly rateMaxAge: Duration.Duration
  readonly rateProviderUrl: Option.Option<string>
  readonly rateRefreshInterval: Duration.Duration
  readonly maxBodyBytes: number
  readonly maxReceiptBytes: number
  readonly alertWebhookUrl: Option.Option<string>
  readonly failedOrderAlertThreshold: number
  readonly failedOrderAlertWindow: Duration.Duration
}

const list = (name: string) =>
  Config.string(name).pipe(
    Config.withDefault(""),
    Config.map((raw) => raw.split(",").map((part) => part.trim()).filter((part) => part.length > 0))
  )

const positiveInt = (name: string, fallback: number, max: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be between 1 and ${max}`, validation: (n) => n >= 1 && n <= max })
  )

export const appSettingsConfig: Config.Config<AppSettings> = Config.all({
  port: Config.port("PORT").pipe(Config.withDefault(3000)),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")),
  databaseMaxConnections: positiveInt("DATABASE_MAX_CONNECTIONS", 10, 200),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault("./.jivapay")),
  redisUrl: Config.option(Config.redacted("REDIS_URL")),
  s3Bucket: Config.option(Config.nonEmptyString("S3_BUCKET")),
  s3Endpoint: Config.option(Config.nonEmptyString("S3_ENDPOINT")),
  s3Region: Config.string("S3_REGION").pipe(Config.withDefault("us-east-1")),
  s3ForcePathStyle: Config.boolean("S3_FORCE_PATH_STYLE").pipe(Config.withDefault(false)),
  adminEmail: Config.string("ADMIN_EMAIL").pipe(Config.withDefault("admin@jivapay.local")),
  adminPassword: Config.option(Config.redacted("ADMIN_PASSWORD")),
  seedDemo: Config.boolean("SEED_DEMO").pipe(Config.withDefault(true)),
  workerConcurrency: positiveInt("WORKER_CONCURRENCY", 8, 256),
  workerBatchSize: positiveInt("WORKER_BATCH_SIZE", 32, 1000),
  workerPollInterval: Config.duration("WORKER_POLL_INTERVAL").pipe(Config.withDefault(Duration.seconds(2))),
  orderMaxRetries: positiveInt("ORDER_MAX_RETRIES", 5, 100),
  retryBaseDelay: Config.duration("ORDER_RETRY_BASE_DELAY").pipe(Config.withDefault(Duration.seconds(5))),
  retryMaxDelay: Config.duration("ORDER_RETRY_MAX_DELAY").pipe(Config.withDefault(Duration.minutes(10))),
  allowPrivateCallbackUrls: Config.boolean("ALLOW_PRIVATE_CALLBACK_URLS").pipe(Config.withDefault(false)),
  trustedProxies: list("TRUSTED_PROXIES"),
  otlpEndpoint: Config.option(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT")),
  logLevel: Config.string("LOG_LEVEL").pipe(Config.withDefault("info")),
  sessionTtl: Config.duration("SESSION_TTL").pipe(Config.withDefault(Duration.hours(12))),
  rateMaxAge: Config.duration("RATE_MAX_AGE").pipe(Config.withDefault(Duration.minutes(30))),
  rateProviderUrl: Config.option(Config.nonEmptyString("RATE_PROVIDER_URL")),
  rateRefreshInterval: Config.duration("RATE_REFRESH_INTERVAL").pipe(Config.withDefault(Duration.minutes(5))),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 64 * 1024, 16 * 1024 * 1024),
  maxReceiptBytes: positiveInt("MAX_RECEIPT_BYTES", 5 * 1024 * 1024, 50 * 1024 * 1024),
  alertWebhookUrl: Config.option(Config.nonEmptyString("ALERT_WEBHOOK_URL")),
  failedOrderAlertThreshold: positiveInt("FAILED_ORDER_ALERT_THRESHOLD", 20, 100_000),
  failedOrderAlertWindow: Config.duration("FAILED_ORDER_ALERT_WINDOW").pipe(Config.withDefault(Duration.minutes(5)))
})

export class AppConfig extends Context.Tag("AppConfig")<AppConfig, AppSettings>() {
  static readonly layer = Layer.effect(AppConfig, appSettingsConfig)
  /** For tests: the environment's settings with some replaced. */
  static readonly layerWith = (overrides: Partial<AppSettings>) =>
    Layer.effect(AppConfig, Effect.map(appSettingsConfig, (settings) => ({ ...settings, ...overrides })))
}
