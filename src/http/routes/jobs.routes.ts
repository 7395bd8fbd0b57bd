import type { AppContext } from '../../usecases/context.js';
import type { TypedApp } from '../typed-app.js';

export function jobRoutes(_app: TypedApp, _ctx: AppContext) {}
