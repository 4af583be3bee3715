-- One row per day: flights_daily rolled up over carriers, joined to weather_daily rolled up
-- over the three airports. Both inputs hold only this run's partitions.
with f as (
    select flight_date as day,
           sum(flights) as flights,
           round(sum(avg_dep_delay_min * (flights - cancelled)) / nullif(sum(flights - cancelled), 0), 2)
               as avg_dep_delay_min,
           round(sum(on_time_pct * (flights - cancelled)) / nullif(sum(flights - cancelled), 0), 2)
               as on_time_pct
    from flights
    group by flight_date
), w as (
    select weather_date as day,
           max(max_wind_mph) as max_wind_mph,
           max(precip_in) as precip_in,
           min(min_visibility_mi) as min_visibility_mi
    from weather
    group by weather_date
)
select f.day, f.flights, f.avg_dep_delay_min, f.on_time_pct,
       w.max_wind_mph, w.precip_in, w.min_visibility_mi
from f join w using (day)
