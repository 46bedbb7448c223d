// The type every committed dashboard must satisfy: @grafana/schema's Dashboard, plus the
// top-level fields Grafana's Prometheus annotation support reads (the core schema leaves them
// to the plugin). The test writes one `<name>.ts` per dashboard next to this file:
//   import type { ModelshipDashboard } from './check';
//   export const dashboard: ModelshipDashboard = { ...the JSON... };
// An object literal is checked for excess properties too, so a misspelt key fails.
import type { AnnotationQuery, Dashboard } from '@grafana/schema';

export interface PrometheusAnnotation extends AnnotationQuery {
  expr: string;
  step?: string;
  titleFormat?: string;
  tagKeys?: string;
  textFormat?: string;
}

export type ModelshipDashboard = Omit<Dashboard, 'annotations'> & {
  annotations?: { list?: PrometheusAnnotation[] };
};
