import { HttpApi, OpenApi } from "@effect/platform"
import { AdminApi } from "./AdminApi.js"
import { AuthApi } from "./AuthApi.js"
import { DeadLetterApi } from "./DeadLetterApi.js"
import { FraudApi } from "./FraudApi.js"
import { OpsApi } from "./OpsApi.js"
import { LedgerApi } from "./LedgerApi.js"
import { LifecycleApi } from "./LifecycleApi.js"
import { MerchantApi } from "./MerchantApi.js"
import { TraderApi } from "./TraderApi.js"

export class JivaPayApi extends HttpApi.make("jivapay")
  .add(OpsApi)
  .add(AuthApi)
  .add(AdminApi)
  .add(TraderApi)
  .add(FraudApi)
  .add(MerchantApi)
  .add(LedgerApi)
  .add(LifecycleApi)
  .add(DeadLetterApi)
  .annotate(OpenApi.Title, "JivaPay API")
  .annotate(OpenApi.Description, "P2P payment processing: merchants, traders, orders, balances.")
{}
